"""Differential test: the native flat-chain path gives pyhanko-certvalidator's verdict.

Generated cases vary validity edges, KeyUsage / EKU / BasicConstraints, critical extensions,
AKI / SKI, same-DN CA generations, weak keys and hashes, policies and name encodings. For each
case the fast path (``jpki.verify.flat.flat_chain``, caches warm as in production) either
defers (``None``: the case goes to certvalidator anyway) or must give certvalidator's
valid/invalid verdict. A disagreement fails the test; so does a run where the fast path
decides too few cases to mean anything.

CI runs a few hundred cases. The full run (10^4 cases, about a minute)::

    JPKI_DIFF_CASES=10000 PYTHONPATH=src python3 -m pytest -q tests/test_verify_flat_diff.py -s

Revocation is not part of certvalidator's verdict here (jpki checks it itself);
``test_revocation_checked_on_every_call`` shows the cached chain never skips it.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko_certvalidator import CertificateValidator, PKIXValidationParams, ValidationContext
from pyhanko_certvalidator import errors as cv_errors

from jpki.cert import JpkiCertificate
from jpki.revocation.crl import Crl
from jpki.testing.pki import TestPki, deterministic_key
from jpki.verify import Policy, Purpose, Status, revocation_checker, validate_chain
from jpki.verify.flat import CertificateCache, flat_chain

CASES = int(os.environ.get("JPKI_DIFF_CASES", "400"))
SEED = int(os.environ.get("JPKI_DIFF_SEED", "20261201"))
_DER = Encoding.DER
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
P1, P2, P3 = "1.2.392.200149.8.5.1.3.30", "1.2.392.200149.8.5.1.1.20", "1.3.6.1.4.1.99999.1"
ANY_POLICY = "2.5.29.32.0"
UNKNOWN_EXT = x509.ObjectIdentifier("1.3.6.1.4.1.99999.7")
KU_BITS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)
REQUIRED = (
    frozenset({"digital_signature"}),
    frozenset({"digital_signature", "non_repudiation"}),
    frozenset(),
)


def _key(label: str, size: int = 2048) -> rsa.RSAPrivateKey:
    return deterministic_key("flat-diff", label, size)


def _ca_name(printable: bool = True, org: str = "JPKI-TEST") -> x509.Name:
    t = _ASN1Type.PrintableString if printable else _ASN1Type.UTF8String
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP", _type=t),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org, _type=t),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "diff CA", _type=t),
        ]
    )


def _ca(key: rsa.RSAPrivateKey, name: x509.Name, *, ski: bool = True, serial: int = 1) -> bytes:
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(T0 - timedelta(days=3650))
        .not_valid_after(T0 + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    )
    if ski:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    return b.sign(key, hashes.SHA256()).public_bytes(_DER)


@dataclass
class World:
    """The keys and CA certificates the cases draw from (built once)."""

    gen_a: rsa.RSAPrivateKey
    gen_b: rsa.RSAPrivateKey
    stranger: rsa.RSAPrivateKey
    small: rsa.RSAPrivateKey
    leaf_key: rsa.RSAPrivateKey
    ca_a: bytes
    ca_a_noski: bytes
    ca_b: bytes
    ca_small: bytes
    ca_other: bytes  # another DN


@pytest.fixture(scope="module")
def world() -> World:
    a, b, s = _key("gen-a"), _key("gen-b"), _key("stranger")
    small = _key("small", 1024)
    return World(
        gen_a=a,
        gen_b=b,
        stranger=s,
        small=small,
        leaf_key=_key("leaf"),
        ca_a=_ca(a, _ca_name()),
        ca_a_noski=_ca(a, _ca_name(), ski=False, serial=2),
        ca_b=_ca(b, _ca_name(), serial=3),
        ca_small=_ca(small, _ca_name(org="SMALL")),
        ca_other=_ca(s, _ca_name(org="OTHER")),
    )


@dataclass
class Case:
    leaf: bytes
    anchors: tuple[bytes, ...]
    times: tuple[datetime, ...]
    required: tuple[frozenset[str], ...]
    policies: tuple[frozenset[str] | None, ...]
    label: str


def _pick(rng: random.Random, regular: bool = False, **weights: int) -> str:
    """A weighted choice; ``regular`` keeps only the first (most common) option's kin."""
    if regular:
        weights = {k: v for k, v in weights.items() if k in _REGULAR}
    return rng.choices(list(weights), list(weights.values()))[0]


# The options a "regular" leaf keeps: those the fast path is meant to decide itself. Other
# leaves mix in everything (each such option alone sends the case to certvalidator).
_REGULAR = frozenset(
    {
        "a",
        "b",
        "ab",
        "ab-small",
        "same",
        "signer",
        "issuer-serial",
        "none",
        "unknown",
        "unknown-crit",
        "san-crit",
    }
)


def _leaf(w: World, rng: random.Random, serial: int) -> tuple[bytes, tuple[bytes, ...], str, bool]:
    """One end-entity certificate and the anchors it is judged against."""
    regular = rng.random() < 0.6
    tags: list[str] = ["regular" if regular else "mixed"]
    anchors_choice = _pick(rng, regular, a=3, ab=3, **{"ab-small": 1, "a-noski+b": 1, "other": 1})
    anchors = {
        "a": (w.ca_a,),
        "ab": (w.ca_a, w.ca_b),
        "ab-small": (w.ca_b, w.ca_a, w.ca_small),
        "a-noski+b": (w.ca_a_noski, w.ca_b),
        "other": (w.ca_other,),
    }[anchors_choice]
    tags.append(f"anchors={anchors_choice}")
    signer_name = _pick(rng, regular, a=6, b=2, stranger=1, small=1)
    if regular and anchors_choice == "a":
        signer_name = "a"
    signer = {"a": w.gen_a, "b": w.gen_b, "stranger": w.stranger, "small": w.small}[signer_name]
    tags.append(f"signer={signer_name}")
    enc = _pick(rng, regular, same=10, utf8=1, case=1)
    tags.append(f"issuer-enc={enc}")
    org = "SMALL" if signer_name == "small" else "JPKI-TEST"
    if enc == "same":
        issuer = _ca_name(org=org)
    elif enc == "utf8":
        issuer = _ca_name(printable=False, org=org)
    else:
        issuer = _ca_name(org=org.lower())
    nb = T0 + timedelta(seconds=rng.randrange(0, 86400))
    na = nb + timedelta(days=rng.choice([1, 30, 400]))
    b = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"leaf {serial}")])
            if regular or rng.random() < 0.8
            else issuer  # self-issued name
        )
        .issuer_name(issuer)
        .public_key(w.leaf_key.public_key())
        .serial_number(serial)
        .not_valid_before(nb)
        .not_valid_after(na)
    )
    aki = _pick(rng, regular, signer=7, none=2, other=1, **{"issuer-serial": 1})
    tags.append(f"aki={aki}")
    if aki == "signer":
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
    elif aki == "other":
        other = w.gen_b if signer is w.gen_a else w.gen_a
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(other.public_key()), False
        )
    elif aki == "issuer-serial":
        # As JPKI certificates carry it: key id + the CA's issuer name and serial (ca_a has
        # serial 1, ca_b 3); sometimes a serial of no anchor.
        kid = x509.SubjectKeyIdentifier.from_public_key(signer.public_key()).digest
        ca_serial = rng.choice([1, 3, 7]) if not regular else (1 if signer is w.gen_a else 3)
        b = b.add_extension(
            x509.AuthorityKeyIdentifier(kid, [x509.DirectoryName(_ca_name())], ca_serial), False
        )
    ku = rng.choice(["absent", "ds", "ds+nr", "nr", "random", "none-set"])
    tags.append(f"ku={ku}")
    if ku != "absent":
        bits = dict.fromkeys(KU_BITS, False)
        if ku == "ds":
            bits["digital_signature"] = True
        elif ku == "ds+nr":
            bits["digital_signature"] = bits["content_commitment"] = True
        elif ku == "nr":
            bits["content_commitment"] = True
        elif ku == "random":
            bits = {k: rng.random() < 0.4 for k in KU_BITS}
        if ku == "none-set" or any(bits.values()):
            b = b.add_extension(
                x509.KeyUsage(**bits, encipher_only=False, decipher_only=False),
                critical=rng.random() < 0.7,
            )
    eku = rng.choice(["none", "none", "client", "ocsp"])
    tags.append(f"eku={eku}")
    if eku != "none":
        oid = (
            ExtendedKeyUsageOID.CLIENT_AUTH if eku == "client" else ExtendedKeyUsageOID.OCSP_SIGNING
        )
        b = b.add_extension(x509.ExtendedKeyUsage([oid]), critical=rng.random() < 0.3)
    bc = rng.choice(["none", "none", "false", "true"])
    tags.append(f"bc={bc}")
    if bc != "none":
        b = b.add_extension(
            x509.BasicConstraints(ca=bc == "true", path_length=None), critical=rng.random() < 0.5
        )
    pol = rng.choice(["none", "p1", "p2", "any", "p1p2"])
    tags.append(f"policies={pol}")
    if pol != "none":
        oids = {"p1": [P1], "p2": [P2], "any": [ANY_POLICY], "p1p2": [P1, P2]}[pol]
        b = b.add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(x509.ObjectIdentifier(o), None) for o in oids]
            ),
            critical=rng.random() < 0.3,
        )
    extra = _pick(rng, regular, none=8, unknown=1, pc=1, nc=1, **{"unknown-crit": 2, "san-crit": 1})
    tags.append(f"extra={extra}")
    if extra in ("unknown-crit", "unknown"):
        b = b.add_extension(
            x509.UnrecognizedExtension(UNKNOWN_EXT, b"\x05\x00"), critical=extra == "unknown-crit"
        )
    elif extra == "san-crit":
        b = b.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("a@example.jp")]), critical=True
        )
    elif extra == "pc":
        b = b.add_extension(x509.PolicyConstraints(0, None), critical=True)
    elif extra == "nc":
        b = b.add_extension(x509.NameConstraints([x509.DNSName("example.jp")], None), critical=True)
    hash_alg = rng.choice(
        [hashes.SHA256()] * 4 + [hashes.SHA384(), hashes.SHA512()]
        if regular
        else [hashes.SHA256()] * 6 + [hashes.SHA384(), hashes.SHA512(), hashes.SHA224()]
    )
    tags.append(f"hash={hash_alg.name}")
    der = b.sign(signer, hash_alg).public_bytes(_DER)
    return der, anchors, ",".join(tags), regular


def _times(cert: x509.Certificate, rng: random.Random) -> tuple[datetime, ...]:
    nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
    edges = [-2.0, -1.0, -0.999, -0.5, 0.0, 0.5, 1.0, 1.001, 2.0]
    out = [nb + (na - nb) / 2]
    for _ in range(3):
        base = rng.choice([nb, na])
        out.append(base + timedelta(seconds=rng.choice(edges)))
    return tuple(out)


def _cases(w: World, n: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    out: list[Case] = []
    count = 0
    serial = 1000
    while count < n:
        serial += 1
        leaf, anchors, label, regular = _leaf(w, rng, serial)
        times = _times(x509.load_der_x509_certificate(leaf), rng)
        required = tuple(rng.choice(REQUIRED) for _ in times)
        policies = tuple(
            rng.choice(
                [None] * 4
                + [frozenset({P1})] * 2
                + [frozenset({P1, P3})]
                + ([] if regular else [frozenset({ANY_POLICY})])
            )
            for _ in times
        )
        out.append(Case(leaf, anchors, times, required, policies, label))
        count += len(times)
    return out


class Reference:
    """pyhanko-certvalidator configured as jpki.verify.path configures it (no fetching)."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()

    def valid(
        self,
        leaf: bytes,
        anchors: tuple[bytes, ...],
        at: datetime,
        ku: frozenset[str],
        policies: frozenset[str] | None,
    ) -> bool:
        ctx = ValidationContext(
            trust_roots=[asn1_x509.Certificate.load(a) for a in anchors],
            moment=at,
            allow_fetching=False,
            revocation_mode="none",
        )
        params = None
        if policies is not None:
            params = PKIXValidationParams(
                user_initial_policy_set=policies, initial_explicit_policy=True
            )
        v = CertificateValidator(
            asn1_x509.Certificate.load(leaf), validation_context=ctx, pkix_params=params
        )
        try:
            self.runner.run(v.async_validate_usage(set(ku)))  # type: ignore[no-untyped-call]
        except (cv_errors.PathError, cv_errors.ValidationError):
            return False
        return True


def test_flat_path_agrees_with_certvalidator(world: World) -> None:
    cases = _cases(world, CASES, SEED)
    cache = CertificateCache()
    ref = Reference()
    stats: Counter[str] = Counter()
    disagreements: list[str] = []
    try:
        for case in cases:
            leaf = JpkiCertificate.load(case.leaf)
            anchors = [JpkiCertificate.load(a) for a in case.anchors]
            for at, ku, pol in zip(case.times, case.required, case.policies, strict=True):
                stats["cases"] += 1
                fast = flat_chain(leaf, anchors, at=at, key_usage=ku, policies=pol, cache=cache)
                if fast is None:
                    stats["deferred"] += 1
                    continue
                stats["native"] += 1
                stats["native-valid" if fast.valid else "native-invalid"] += 1
                want = ref.valid(case.leaf, case.anchors, at, ku, pol)
                if fast.valid != want:
                    disagreements.append(
                        f"{case.label} at={at.isoformat()} ku={sorted(ku)} policies={pol}: "
                        f"flat={'valid' if fast.valid else fast.problem} certvalidator={want}"
                    )
    finally:
        ref.runner.close()
    print(f"\nflat-chain differential: {dict(stats)}")
    assert not disagreements, "\n".join(disagreements[:20])
    assert stats["cases"] >= CASES
    # The fast path must actually decide a large share, both ways, or the test proves nothing.
    assert stats["native"] >= stats["cases"] * 0.4, stats
    assert stats["native-valid"] >= stats["cases"] * 0.05, stats
    assert stats["native-invalid"] >= stats["cases"] * 0.05, stats


def test_revocation_checked_on_every_call(test_pki: TestPki) -> None:
    """A cached chain verdict never stands in for revocation: a new CRL is seen at once."""
    auth = test_pki.issue_auth(label="flat-revoked")
    at = test_pki.now + timedelta(days=1)
    ca = test_pki.auth_ca.jpki
    leaf = auth.jpki
    clean = Crl.load(test_pki.make_crl("auth", [], this_update=at - timedelta(hours=1)))
    listed = Crl.load(
        test_pki.make_crl(
            "auth",
            [(leaf.serial, x509.ReasonFlags.key_compromise, at - timedelta(days=1))],
            this_update=at - timedelta(hours=1),
            number=2,
        )
    )
    for _ in range(3):
        ok = validate_chain(
            leaf,
            Policy(
                anchors=[ca],
                at=at,
                purpose=Purpose.LOGIN,
                revocation=revocation_checker(crls=[clean]),
            ),
        )
        assert ok.status is Status.VALID, ok.reasons
        bad = validate_chain(
            leaf,
            Policy(
                anchors=[ca],
                at=at,
                purpose=Purpose.LOGIN,
                revocation=revocation_checker(crls=[listed]),
            ),
        )
        assert bad.status is Status.INVALID and any("REVOKED" in r for r in bad.reasons)


def test_cached_verdict_expires_with_the_certificate(test_pki: TestPki) -> None:
    auth = test_pki.issue_auth(label="flat-expiry")
    leaf, ca = auth.jpki, test_pki.auth_ca.jpki
    inside = leaf.not_after - timedelta(seconds=5)
    after = leaf.not_after + timedelta(seconds=2)
    assert (
        validate_chain(leaf, Policy(anchors=[ca], at=inside, purpose="login")).status
        is Status.VALID
    )
    late = validate_chain(leaf, Policy(anchors=[ca], at=after, purpose="login"))
    assert late.status is Status.INVALID and "expired" in " ".join(late.reasons)
    assert (
        validate_chain(leaf, Policy(anchors=[ca], at=inside, purpose="login")).status
        is Status.VALID
    )
