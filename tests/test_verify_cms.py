"""CMS SignedData verification against real `openssl cms -sign` output."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jpki.cert import JpkiCertificate
from jpki.errors import JpkiError, SignatureFormatError
from jpki.testing.pki import Issued, TestPki, sample_person
from jpki.verify import Code, Policy, Status, parse_signed_data, verify_cms

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

CONTENT = "電子契約書\r\nbinary \x00\xff ok\n".encode()
AT = datetime(2026, 6, 1, tzinfo=UTC)

Signer = Callable[..., bytes]


def _write_issued(dir_: Path, name: str, issued: Issued) -> tuple[Path, Path]:
    cert = dir_ / f"{name}.crt"
    key = dir_ / f"{name}.key"
    cert.write_bytes(issued.pem)
    key.write_bytes(
        issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def signers(test_pki: TestPki) -> dict[str, Issued]:
    return {
        "alice": test_pki.issue_signing(sample_person(0)),
        "bob": test_pki.issue_signing(sample_person(1)),
        "auth": test_pki.issue_auth(),
    }


@pytest.fixture(scope="module")
def openssl_sign(tmp_path_factory: pytest.TempPathFactory, signers: dict[str, Issued]) -> Signer:
    d = tmp_path_factory.mktemp("cms")
    files = {n: _write_issued(d, n, i) for n, i in signers.items()}
    content = d / "content.bin"
    content.write_bytes(CONTENT)

    def sign(*opts: str, who: tuple[str, ...] = ("alice",), fmt: str = "DER") -> bytes:
        out = d / "out.p7"
        args = ["openssl", "cms", "-sign", "-in", str(content), "-outform", fmt, "-out", str(out)]
        for w in who:
            cert, key = files[w]
            args += ["-signer", str(cert), "-inkey", str(key)]
        subprocess.run([*args, *opts], check=True, capture_output=True)
        return out.read_bytes()

    return sign


@pytest.fixture(scope="module")
def anchors(test_pki: TestPki, test_pki_2015: TestPki) -> list[JpkiCertificate]:
    return [JpkiCertificate.load(p.sign_ca.der) for p in (test_pki_2015, test_pki)]


@pytest.mark.parametrize(
    ("opts", "fmt"),
    [
        (("-binary", "-md", "sha256"), "DER"),
        (("-binary", "-md", "sha384"), "PEM"),
        (("-binary", "-noattr"), "DER"),
        (("-binary", "-noattr", "-md", "sha512"), "PEM"),
        (("-binary", "-keyid"), "DER"),
    ],
)
def test_detached(
    openssl_sign: Signer, opts: tuple[str, ...], fmt: str, anchors: list[JpkiCertificate]
) -> None:
    blob = openssl_sign(*opts, fmt=fmt)
    r = verify_cms(blob, Policy(anchors=anchors, at=AT), content=CONTENT)
    assert r.status is Status.VALID, r.reasons
    # Without anchors the embedded certificate vouches for nobody: never "valid".
    untrusted = verify_cms(blob, Policy(at=AT), content=CONTENT)
    assert untrusted.status is Status.INDETERMINATE
    assert "NOT validated" in untrusted.reasons[-1]
    if "-noattr" in opts:
        assert r.signing_time is None
    else:
        assert r.signing_time is not None
    # Detached without the content: cannot decide.
    assert verify_cms(blob, Policy(at=AT)).status is Status.INDETERMINATE
    altered = bytearray(CONTENT)
    altered[3] ^= 1
    bad = verify_cms(blob, Policy(at=AT), content=bytes(altered))
    assert bad.status is Status.INVALID
    text = " ".join(bad.reasons)
    assert "messageDigest" in text or "different data" in text


@pytest.mark.parametrize(
    "opts", [("-nodetach", "-binary"), ("-nodetach", "-binary", "-noattr"), ("-nodetach",)]
)
@pytest.mark.parametrize("fmt", ["DER", "PEM"])
def test_attached(
    openssl_sign: Signer, opts: tuple[str, ...], fmt: str, anchors: list[JpkiCertificate]
) -> None:
    blob = openssl_sign(*opts, fmt=fmt)
    sd = parse_signed_data(blob)
    assert sd.content is not None
    r = verify_cms(blob, Policy(anchors=anchors, at=AT))
    assert r.status is Status.VALID, r.reasons
    assert r.certificate_kind == "signing"


def test_attached_with_trust_and_generations(
    openssl_sign: Signer, anchors: list[JpkiCertificate]
) -> None:
    blob = openssl_sign("-nodetach", "-binary")
    r = verify_cms(blob, Policy(anchors=anchors, at=AT))
    assert r.status is Status.VALID, r.reasons
    assert len(r.chain) == 2
    # Only the 2015 generation (same DN, other key) trusted: not a valid chain.
    r2 = verify_cms(blob, Policy(anchors=anchors[:1], at=AT))
    assert r2.status is Status.INVALID
    assert "does not chain" in " ".join(r2.reasons)
    # After the signer certificate expired.
    late = verify_cms(blob, Policy(anchors=anchors, at=datetime(2045, 1, 1, tzinfo=UTC)))
    assert late.status is Status.INVALID
    assert "expired" in " ".join(late.reasons)


def test_two_signers(openssl_sign: Signer, anchors: list[JpkiCertificate]) -> None:
    blob = openssl_sign("-nodetach", "-binary", who=("alice", "bob"))
    r = verify_cms(blob, Policy(anchors=anchors, at=AT))
    assert r.status is Status.VALID, r.reasons
    assert len(r.signers) == 2
    assert r.reasons[0].startswith("signer 1/2")
    assert len({s.certificate_fingerprint for s in r.signers}) == 2


def test_one_bad_signer_spoils_the_lot(
    openssl_sign: Signer, test_pki: TestPki, anchors: list[JpkiCertificate]
) -> None:
    blob = openssl_sign("-nodetach", "-binary", who=("alice", "auth"))
    trusted = [*anchors, JpkiCertificate.load(test_pki.auth_ca.der)]
    r = verify_cms(blob, Policy(anchors=trusted, at=AT))
    assert r.status is Status.INVALID
    assert [s.status for s in r.signers] == [Status.VALID, Status.INVALID]
    assert "signing certificate" in " ".join(r.signers[1].reasons)
    assert verify_cms(blob, Policy(anchors=trusted, at=AT, purpose="any")).status is Status.VALID


def test_certificates_supplied(
    openssl_sign: Signer, signers: dict[str, Issued], anchors: list[JpkiCertificate]
) -> None:
    blob = openssl_sign("-nodetach", "-binary", "-nocerts")
    missing = verify_cms(blob, Policy(at=AT))
    assert missing.status is Status.INDETERMINATE
    assert "neither embedded nor supplied" in missing.reasons[0]
    cert = JpkiCertificate.load(signers["alice"].der)
    ok = verify_cms(blob, Policy(anchors=anchors, at=AT), certificates=[cert])
    assert ok.status is Status.VALID
    wrong = JpkiCertificate.load(signers["bob"].der)
    assert verify_cms(blob, Policy(at=AT), certificates=[wrong]).status is Status.INDETERMINATE


def test_flipped_signature_bit(openssl_sign: Signer) -> None:
    blob = bytearray(openssl_sign("-nodetach", "-binary"))
    blob[-10] ^= 0x04  # inside the signature value (the last field of the structure)
    r = verify_cms(bytes(blob), Policy(at=AT))
    assert r.status is Status.INVALID
    assert "does not belong" in " ".join(r.reasons)


def test_content_mismatch_with_attached(openssl_sign: Signer) -> None:
    blob = openssl_sign("-nodetach", "-binary")
    r = verify_cms(blob, Policy(at=AT), content=b"something else")
    assert r.status is Status.INVALID
    assert "differs" in r.reasons[0]


def test_malformed_inputs() -> None:
    for blob in (b"", b"hello", b"\x30\x03\x02\x01\x01", b"-----BEGIN CMS-----\nzz\n"):
        with pytest.raises(SignatureFormatError):
            verify_cms(blob)
    from asn1crypto import cms

    data_ci = cms.ContentInfo({"content_type": "data", "content": b"x"}).dump()
    with pytest.raises(SignatureFormatError, match="not signed data"):
        verify_cms(data_ci)


@pytest.fixture(scope="module")
def sample_cms(openssl_sign: Signer) -> bytes:
    return openssl_sign("-nodetach", "-binary")


@given(st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_mutated_cms_never_crashes(sample_cms: bytes, data: st.DataObject) -> None:
    blob = bytearray(sample_cms)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(blob)))
    try:
        r = verify_cms(bytes(blob[:cut]), Policy(at=AT))
    except SignatureFormatError:  # a malformed CMS, whichever part of it is damaged
        return
    assert r.status in set(Status)
    assert r.reasons


# Byte flips (offset in the certificate DER, xor) in the embedded signer certificate that
# JpkiCertificate.load accepts but whose extensions cryptography cannot decode: a damaged
# directoryName surfaces as KeyError / TypeError (found by mutating a CMS; was a traceback).
CERT_DAMAGE = [((1298, 117), (1413, 128)), ((1264, 15),)]


@pytest.mark.parametrize("flips", CERT_DAMAGE)
def test_damaged_embedded_certificate_is_a_format_error(
    sample_cms: bytes, signers: dict[str, Issued], flips: tuple[tuple[int, int], ...]
) -> None:
    from cryptography import x509

    der = signers["alice"].der
    at = sample_cms.index(der)
    blob = bytearray(sample_cms)
    bad_cert = bytearray(der)
    for off, xor in flips:
        blob[at + off] ^= xor
        bad_cert[off] ^= xor
    # cryptography <= 48 accepts these bytes and then fails with KeyError/TypeError on the
    # extensions; newer releases refuse them at parse time. Either way: a clean format error.
    with pytest.raises((KeyError, TypeError, ValueError)):
        _ = x509.load_der_x509_certificate(bytes(bad_cert)).extensions
    with pytest.raises(SignatureFormatError, match="embedded certificate 1 is malformed"):
        verify_cms(bytes(blob), Policy(at=AT))


@given(st.binary(max_size=300))
@settings(max_examples=200)
def test_random_bytes_never_crash(blob: bytes) -> None:
    try:
        parse_signed_data(blob)
    except JpkiError:
        return
    raise AssertionError("random bytes parsed as CMS")  # pragma: no cover


# --- signed attributes checked: CMS built here and signed with the signer's key ------------


def _crafted(
    issued: Issued,
    content: bytes,
    *,
    content_type: str | None = "data",
    message_digest: bytes | None = None,
    extra: tuple[tuple[str, object], ...] = (),
) -> bytes:
    """Attached SignedData whose signature over the signed attributes is genuinely valid."""
    import hashlib

    from asn1crypto import cms, core
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from cms_helpers import signed_data

    attrs = []
    if content_type is not None:
        attrs.append(cms.CMSAttribute({"type": "content_type", "values": [content_type]}))
    md = hashlib.sha256(content).digest() if message_digest is None else message_digest
    attrs.append(cms.CMSAttribute({"type": "message_digest", "values": [md]}))
    attrs.append(
        cms.CMSAttribute(
            {"type": "signing_time", "values": [cms.Time({"utc_time": core.UTCTime(AT)})]}
        )
    )
    for name, value in extra:
        attrs.append(cms.CMSAttribute({"type": name, "values": [value]}))
    signed_attrs = cms.CMSAttributes(attrs)
    sig = issued.key.sign(signed_attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    return signed_data(issued.der, signed_attrs, sig, content)


def test_signed_attributes_checked(
    signers: dict[str, Issued], anchors: list[JpkiCertificate]
) -> None:
    alice = signers["alice"]
    ok = verify_cms(_crafted(alice, CONTENT), Policy(anchors=anchors, at=AT))
    assert ok.status is Status.VALID, ok.reasons
    assert ok.signing_time == AT  # signingTime parsed and reported (claimed, not trusted)
    assert any("claimed signing time" in r and "not trusted" in r for r in ok.reasons)
    cases = {
        "differs from the encapsulated type": _crafted(alice, CONTENT, content_type="signed_data"),
        "lack contentType": _crafted(alice, CONTENT, content_type=None),
        "does not match the signed messageDigest": _crafted(
            alice, CONTENT, message_digest=b"\x01" * 32
        ),
        "appears 2 times": _crafted(alice, CONTENT, extra=(("message_digest", b"\x02" * 32),)),
    }
    for why, blob in cases.items():
        r = verify_cms(blob, Policy(at=AT))
        assert r.status is Status.INVALID, (why, r.reasons)
        # The signature itself is fine: only the attribute check can have refused it.
        assert r.signers[0].reasons[0].code is Code.SIGNATURE_OK
        assert why in " ".join(r.reasons)


def test_naive_validation_time_is_a_usage_error(openssl_sign: Signer) -> None:
    from jpki.errors import UsageError

    blob = openssl_sign("-binary")  # detached: refused before "content must be supplied"
    with pytest.raises(UsageError, match="timezone-aware"):
        verify_cms(blob, Policy(at=datetime(2026, 6, 1)))
    with pytest.raises(UsageError, match="timezone-aware"):
        verify_cms(openssl_sign("-nodetach"), Policy(at=datetime(2026, 6, 1)))


def _one_parser_refuses(der: bytes) -> bytes:
    """A one-bit variant of ``der`` that cryptography accepts and asn1crypto refuses."""
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509

    for pos in range(len(der) // 2, len(der)):
        for bit in range(8):
            b = bytearray(der)
            b[pos] ^= 1 << bit
            try:
                c = x509.load_der_x509_certificate(bytes(b))
                _ = (c.subject, c.issuer, c.extensions, c.public_key())
            except Exception:
                continue
            try:
                _ = asn1_x509.Certificate.load(bytes(b)).native
            except ValueError:
                return bytes(b)
    raise AssertionError("no such variant")  # pragma: no cover


def test_extra_certificate_one_parser_refuses_is_invalid_not_a_traceback(
    signers: dict[str, Issued], anchors: list[JpkiCertificate]
) -> None:
    from asn1crypto import cms

    alice, bob = signers["alice"], signers["bob"]
    bad = _one_parser_refuses(bob.der)
    ci = cms.ContentInfo.load(_crafted(alice, CONTENT))
    ci["content"]["certificates"].append(cms.CertificateChoices.load(bad))
    blob = ci.dump()
    assert bad in blob
    r = verify_cms(blob, Policy(anchors=anchors, at=AT))
    assert r.status is Status.INVALID, r.reasons
    assert r.signers[0].has(Code.CERT_MALFORMED)


def test_ca_certificate_with_non_repudiation_is_no_document_signer(
    anchors: list[JpkiCertificate],
) -> None:
    # cA=TRUE with digitalSignature + nonRepudiation and the signing policy OID.
    from forged import SIGN_POLICY, forged

    key, ca = forged(SIGN_POLICY, ca=True, non_repudiation=True)
    issued = Issued(key, ca.certificate)
    blob = _crafted(issued, CONTENT)
    for pol in (Policy(at=AT), Policy(anchors=[*anchors, ca], at=AT)):
        r = verify_cms(blob, pol)
        assert r.status is Status.INVALID, r.reasons
        assert r.signers[0].has(Code.PURPOSE_CA_AS_END_ENTITY)
    assert verify_cms(blob, Policy(anchors=[ca], at=AT, purpose="any")).status is Status.INVALID


def test_signer_result_carries_certificate_and_basic_info(
    signers: dict[str, Issued], anchors: list[JpkiCertificate]
) -> None:
    r = verify_cms(_crafted(signers["alice"], CONTENT), Policy(anchors=anchors, at=AT))
    assert r.status is Status.VALID
    assert r.certificate is not None and r.certificate.der == signers["alice"].der
    assert r.basic_info is not None and r.basic_info.name == sample_person(0).name
    d = r.to_dict()
    assert d["basic_info"]["name"] == sample_person(0).name
    assert d["reason_codes"][0] == "cms.signer" and len(d["reason_codes"]) == len(d["reasons"])


def test_sha1_cms_refused_unless_legacy_is_named(
    openssl_sign: Signer, anchors: list[JpkiCertificate]
) -> None:
    from dataclasses import replace

    from jpki.policy import LEGACY_ALGORITHMS

    try:
        blob = openssl_sign("-nodetach", "-binary", "-md", "sha1")
    except subprocess.CalledProcessError:  # pragma: no cover - an openssl without SHA-1
        pytest.skip("this openssl refuses SHA-1 signatures")
    pol = Policy(anchors=anchors, at=AT)
    r = verify_cms(blob, pol)
    assert r.status is Status.INVALID
    assert r.signers[0].has(Code.ALGORITHM_REFUSED)
    ok = verify_cms(blob, replace(pol, algorithms=LEGACY_ALGORITHMS))
    assert ok.status is Status.VALID, ok.reasons
    assert ok.signers[0].has(Code.ALGORITHM_LEGACY_ACCEPTED)
