"""Create simulator card profiles from the deterministic test PKI (``jpki.testing.pki``)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki.errors import ProfileError, UsageError
from jpki.sim.profile import (
    CHANGEABLE,
    DEFAULT_PINS,
    FAULTS_FILE,
    CardProfile,
    KeyId,
    ProfileStore,
    SimPerson,
    pin_format_ok,
    write_profile,
)

# Certificate sex coding (1 male, 2 female, 3 not applicable) → card coding (1, 2, 9).
_CARD_SEX = {1: 1, 2: 2, 3: 9}


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _expiry(birth: date, issued_year: int) -> date:
    """Card expiry: the holder's 10th birthday after issue (Feb 29 → Feb 28)."""
    day = 28 if (birth.month, birth.day) == (2, 29) else birth.day
    return date(issued_year + 10, birth.month, day)


def _security_code(seed: str, person: int) -> str:
    h = hashlib.sha256(f"{seed}|security-code|{person}".encode()).digest()
    return f"{int.from_bytes(h[:4], 'big') % 10000:04d}"


def build_profile(
    *,
    seed: str = "jpki-test",
    person: int = 0,
    pins: Mapping[KeyId | str, str] | None = None,
    text_long_form: bool = False,
) -> CardProfile:
    """The card a test holder would get from ``TestPki(seed)``; deterministic."""
    from jpki.testing.pki import TestPki, sample_person  # the test PKI is only needed here

    if person < 0:
        raise UsageError("person index must be >= 0")
    try:
        seed.encode("utf-8")
    except UnicodeEncodeError:
        # Undecodable argv bytes arrive as lone surrogates: the key derivation cannot hash them.
        raise UsageError("seed must be UTF-8 text") from None
    chosen = dict(DEFAULT_PINS)
    for k, v in (pins or {}).items():
        try:
            key = KeyId(k)
        except ValueError:
            raise UsageError(f"unknown PIN {k!r}") from None
        if key not in CHANGEABLE or not pin_format_ok(key, v.encode("ascii", "replace")):
            raise UsageError(f"{key.value}: not a valid value for this PIN")
        chosen[key] = v
    pki = TestPki(seed)
    tp = sample_person(person)
    label = tp.my_number
    sign = pki.issue_signing(tp, label=f"sign-{label}")
    auth = pki.issue_auth(label=f"auth-{label}", person=tp)
    der = serialization.Encoding.DER
    return CardProfile(
        auth_cert=auth.cert.public_bytes(der),
        auth_ca_cert=pki.auth_ca.cert.public_bytes(der),
        sign_cert=sign.cert.public_bytes(der),
        sign_ca_cert=pki.sign_ca.cert.public_bytes(der),
        auth_key_pem=_pem(auth.key),
        sign_key_pem=_pem(sign.key),
        issuer_key_pem=_pem(pki.key("card-info-issuer")),
        cvc_root_key_pem=_pem(pki.key("card-info-cvc-root")),
        person=SimPerson(
            name=tp.name,
            address=tp.address,
            birth_date=tp.birth_date,
            sex=_CARD_SEX.get(tp.sex, 9),
            my_number=tp.my_number,
        ),
        expiry_date=_expiry(tp.birth_date, pki.now.year),
        security_code=_security_code(seed, person),
        pins=chosen,
        text_long_form=text_long_form,
        seed=seed,
        person_index=person,
    )


def create_profile(
    path: Path | str,
    *,
    seed: str = "jpki-test",
    person: int = 0,
    pins: Mapping[KeyId | str, str] | None = None,
    text_long_form: bool = False,
    force: bool = False,
) -> ProfileStore:
    """Write a new profile directory at ``path`` (``force`` overwrites, dropping faults.json)."""
    profile = build_profile(seed=seed, person=person, pins=pins, text_long_form=text_long_form)
    store = write_profile(path, profile, force=force)
    try:
        (store.path / FAULTS_FILE).unlink(missing_ok=True)
    except OSError as exc:
        raise ProfileError(f"cannot remove {FAULTS_FILE}: {exc}") from exc
    return store
