"""Create simulator card profiles from the deterministic test PKI (``jpki.testing.pki``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki.errors import ProfileError, TlvError, UsageError
from jpki.sim.layout import key_id
from jpki.sim.profile import (
    CARD_INFO_KEYS,
    CHANGEABLE,
    DEFAULT_PINS,
    DUMP_FILES,
    FAULTS_FILE,
    CardProfile,
    KeyId,
    ProfileStore,
    SimPerson,
    TokenKind,
    pin_format_ok,
    write_profile,
)
from jpki.tlv import decode_one, find

# Key ids of the simulator's own test hierarchy: outside the production (5…) and test (6…)
# ranges, so a client can never mistake a simulated CVC for a J-LIS one.
SIM_KEY_IDS: Mapping[str, bytes] = {
    "text_cvca": key_id("7000033"),
    "text_ap": key_id("7100033"),
    "text_basic": key_id("7000034"),
    "visual_cvca": key_id("7000023"),
    "visual_ap": key_id("7100023"),
}

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
    token: TokenKind | str = TokenKind.CARD,
    sign_cert: bool = True,
) -> CardProfile:
    """The card a test holder would get from ``TestPki(seed)``; deterministic.

    ``token`` picks what answers as the JPKI AP (card, Android or iPhone secure element);
    ``sign_cert=False`` models a card issued without a signing certificate (EF 0008).
    """
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
    try:
        kind = TokenKind(token)
    except ValueError:
        raise UsageError(f"unknown token kind {token!r} (card, android, iphone)") from None
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
        card_info_key_pems={k: _pem(pki.key(f"sim-{k.replace('_', '-')}")) for k in CARD_INFO_KEYS},
        key_ids=dict(SIM_KEY_IDS),
        person=SimPerson(
            name=tp.name,
            address=tp.address,
            birth_date=tp.birth_date,
            sex=_CARD_SEX.get(tp.sex, 9),
            my_number=tp.my_number,
        ),
        expiry_date=_expiry(tp.birth_date, pki.now.year),
        security_code=_security_code(seed, person),
        municipality_code=tp.municipality_code,
        pins=chosen,
        token=kind,
        has_sign_cert=sign_cert,
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
    token: TokenKind | str = TokenKind.CARD,
    sign_cert: bool = True,
    from_dump: Path | str | None = None,
    force: bool = False,
) -> ProfileStore:
    """Write a new profile directory at ``path`` (``force`` overwrites, dropping faults.json).

    ``from_dump``: a directory of ``<ap>-<fid>.bin`` files (``jpki card dump``); the card serves
    those files as they are and generates the others. Person data and the collation values
    come from the dump where it has them. Private keys never come from a dump.
    """
    profile = build_profile(
        seed=seed,
        person=person,
        pins=pins,
        text_long_form=text_long_form,
        token=token,
        sign_cert=sign_cert,
    )
    if from_dump is not None:
        profile = apply_dump(profile, Path(from_dump))
    store = write_profile(path, profile, force=force)
    try:
        (store.path / FAULTS_FILE).unlink(missing_ok=True)
    except OSError as exc:
        raise ProfileError(f"cannot remove {FAULTS_FILE}: {exc}") from exc
    return store


_DUMP_NAME = re.compile(r"^(jpki|text|visual)-([0-9A-Fa-f]{4})\.bin$")
_MAX_DUMP_FILE = 1 << 20


def read_dump(directory: Path) -> dict[str, bytes]:
    """The ``<ap>-<fid>.bin`` files of a dump directory, keyed ``<ap>-<FID>``."""
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a dump directory")
    out: dict[str, bytes] = {}
    try:
        entries = sorted(directory.iterdir())
        for entry in entries:
            m = _DUMP_NAME.match(entry.name)
            if m is None:
                continue  # a README or a listing beside the dump
            name = f"{m.group(1)}-{m.group(2).upper()}"
            if name not in DUMP_FILES:
                raise UsageError(
                    f"{directory}: {entry.name} is not a file a card lets anyone read"
                    " (key EFs and PINs never come from a dump)"
                )
            if not entry.is_file() or entry.stat().st_size > _MAX_DUMP_FILE:
                raise UsageError(f"{directory}: {entry.name} is not a regular file of ≤ 1 MiB")
            out[name] = entry.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read dump {directory}: {exc.strerror or exc}") from None
    if not out:
        raise UsageError(f"{directory}: no <ap>-<fid>.bin files (jpki, text, visual)")
    return out


def _field(record: bytes | None, outer: int, tag: int) -> bytes | None:
    if not record:
        return None
    try:
        top, _ = decode_one(record)
        if top.tag != outer:
            return None
        return find(top.value, tag)
    except TlvError:
        return None


def _date(raw: bytes | None) -> date | None:
    if raw is None or len(raw) != 8 or not raw.isdigit():
        return None
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:
        return None


def apply_dump(profile: CardProfile, directory: Path) -> CardProfile:
    """``profile`` serving a dump's files, its person data taken from them where present."""
    files = read_dump(directory)
    person = profile.person
    my_number = person.my_number
    mn = files.get("text-0001")
    if mn is not None and mn[:3] == b"\xff\x10\x0c" and mn[3:15].isdigit():
        my_number = mn[3:15].decode("ascii")
    t2 = files.get("text-0002")
    v1, v2 = files.get("visual-0001"), files.get("visual-0002")

    def text(tag: int, default: str) -> str:
        raw = _field(t2, 0xFF20, tag)
        try:
            return raw.decode("utf-8") if raw is not None else default
        except UnicodeDecodeError:
            return default

    birth = (
        _date(_field(t2, 0xFF20, 0xDF24))
        or _date(_field(v2, 0xFF20, 0xDF22))
        or _date(_field(v1, 0xFF10, 0xDF11))
        or person.birth_date
    )
    sex_raw = text(0xDF25, "") or (_field(v2, 0xFF20, 0xDF23) or b"").decode("ascii", "replace")
    sex = int(sex_raw) if sex_raw.isdigit() and len(sex_raw) == 1 else person.sex
    expiry = _date(_field(v2, 0xFF20, 0xDF29)) or profile.expiry_date
    muni_raw = _field(files.get("visual-0003"), 0xFF30, 0xDF34)
    muni = profile.municipality_code
    if muni_raw is not None and len(muni_raw) == 5 and muni_raw.isdigit():
        muni = muni_raw.decode("ascii")
    new_person = SimPerson(
        name=text(0xDF22, person.name),
        address=text(0xDF23, person.address),
        birth_date=birth,
        sex=sex,
        my_number=my_number,
    )
    return replace(
        profile,
        person=new_person,
        expiry_date=expiry,
        municipality_code=muni,
        dump_files=files,
        dump_source=str(directory),
    )
