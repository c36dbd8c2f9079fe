"""Signature verification: PKCS#1 v1.5 over data or digest, key-usage policy, DigestInfo."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki.cert import JpkiCertificate
from jpki.digestinfo import (
    PREFIXES,
    PREFIXES_NO_NULL,
    DigestInfo,
    build_digest_info,
    parse_digest_info,
)
from jpki.errors import CertificateError, JpkiError, SignatureFormatError, UsageError
from jpki.testing.pki import Issued, TestPki, sample_person
from jpki.verify import (
    LEGACY_ALGORITHMS,
    Code,
    HashAlgorithm,
    Policy,
    Purpose,
    Status,
    verify_signature,
)
from jpki.verify.result import VerificationResult, worst

DATA = "契約書 version 1\n".encode()


@pytest.fixture(scope="module")
def signing(test_pki: TestPki) -> Issued:
    return test_pki.issue_signing(sample_person(0))


@pytest.fixture(scope="module")
def auth(test_pki: TestPki) -> Issued:
    return test_pki.issue_auth()


def _sign(issued: Issued, data: bytes, h: hashes.HashAlgorithm | None = None) -> bytes:
    return issued.key.sign(data, padding.PKCS1v15(), h or hashes.SHA256())


def test_valid_over_data_and_over_digest(signing: Issued, test_policy: Policy) -> None:
    sig = _sign(signing, DATA)
    r = verify_signature(signing.der, sig, data=DATA, policy=test_policy)
    assert r.status is Status.VALID and r.valid
    assert r.certificate_kind == "signing"
    r2 = verify_signature(
        signing.cert, sig, digest=hashlib.sha256(DATA).digest(), policy=test_policy
    )
    assert r2.status is Status.VALID
    r3 = verify_signature(
        JpkiCertificate.load(signing.pem), sig, data=DATA, hash_alg="SHA-256", policy=test_policy
    )
    assert r3.status is Status.VALID
    assert r.to_dict()["status"] == "valid" and r.to_dict()["reasons"]


@pytest.mark.parametrize(("name", "h"), [("sha384", hashes.SHA384()), ("sha512", hashes.SHA512())])
def test_other_hashes(
    signing: Issued, name: str, h: hashes.HashAlgorithm, test_policy: Policy
) -> None:
    sig = _sign(signing, DATA, h)
    assert verify_signature(signing.der, sig, data=DATA, hash_alg=name, policy=test_policy).valid
    wrong = verify_signature(signing.der, sig, data=DATA, hash_alg="sha256", policy=test_policy)
    assert wrong.status is Status.INVALID
    assert f"{name.upper()} digest" in wrong.reasons[0]
    assert wrong.reasons[0].code is Code.SIGNATURE_HASH_MISMATCH


def test_sha1_refused_unless_legacy_is_named(signing: Issued, test_policy: Policy) -> None:
    sig = _sign(signing, DATA, hashes.SHA1())
    r = verify_signature(signing.der, sig, data=DATA, hash_alg="sha1", policy=test_policy)
    assert r.status is Status.INVALID
    assert r.reasons[0].code is Code.SIGNATURE_OK  # the signature itself is fine
    assert r.has(Code.ALGORITHM_REFUSED) and any("SHA-1" in x for x in r.reasons)
    legacy = replace(test_policy, algorithms=LEGACY_ALGORITHMS)
    ok = verify_signature(signing.der, sig, data=DATA, hash_alg="sha1", policy=legacy)
    assert ok.status is Status.VALID, ok.reasons
    (note,) = [x for x in ok.reasons if x.code is Code.ALGORITHM_LEGACY_ACCEPTED]
    assert "SHA-1" in note and "'legacy'" in note


def test_rsa_1024_refused_unless_legacy_is_named(test_policy: Policy) -> None:
    small = TestPki("rsa-1024", key_size=1024)
    signer = small.issue_signing(sample_person(0))
    pol = replace(test_policy, anchors=(JpkiCertificate.load(small.sign_ca.der),))
    sig = _sign(signer, DATA)
    r = verify_signature(signer.der, sig, data=DATA, policy=pol)
    assert r.status is Status.INVALID
    assert any(x.code is Code.ALGORITHM_REFUSED and "1024 bits" in x for x in r.reasons)
    ok = verify_signature(
        signer.der, sig, data=DATA, policy=replace(pol, algorithms=LEGACY_ALGORITHMS)
    )
    assert ok.status is Status.VALID, ok.reasons
    assert any("RSA-1024" in x for x in ok.reasons if x.code is Code.ALGORITHM_LEGACY_ACCEPTED)


def test_flipped_bit_in_signature(signing: Issued, test_policy: Policy) -> None:
    sig = bytearray(_sign(signing, DATA))
    sig[100] ^= 0x01
    r = verify_signature(signing.der, bytes(sig), data=DATA, policy=test_policy)
    assert r.status is Status.INVALID
    assert "does not belong to this certificate's key" in r.reasons[0]


def test_flipped_bit_in_data(signing: Issued, test_policy: Policy) -> None:
    sig = _sign(signing, DATA)
    data = bytearray(DATA)
    data[0] ^= 0x80
    r = verify_signature(signing.der, sig, data=bytes(data), policy=test_policy)
    assert r.status is Status.INVALID
    assert "over different data" in r.reasons[0]


def test_wrong_key(test_pki: TestPki, signing: Issued, test_policy: Policy) -> None:
    other = test_pki.issue_signing(sample_person(1))
    r = verify_signature(other.der, _sign(signing, DATA), data=DATA, policy=test_policy)
    assert r.status is Status.INVALID
    assert "wrong key" in r.reasons[0]


def test_truncated_signature(signing: Issued, test_policy: Policy) -> None:
    r = verify_signature(signing.der, _sign(signing, DATA)[:-1], data=DATA, policy=test_policy)
    assert r.status is Status.INVALID
    assert "255 bytes" in r.reasons[0]


def test_auth_certificate_cannot_sign_documents(auth: Issued, test_policy: Policy) -> None:
    sig = _sign(auth, DATA)
    r = verify_signature(auth.der, sig, data=DATA, policy=test_policy)  # default purpose: sign
    assert r.status is Status.INVALID
    assert r.reasons[0] == "signature matches the certificate's key"
    assert "document signatures need a signing certificate" in r.reasons[1]
    assert verify_signature(
        auth.der, sig, data=DATA, policy=replace(test_policy, purpose=Purpose.LOGIN)
    ).valid


def test_signing_certificate_cannot_log_in(signing: Issued, test_policy: Policy) -> None:
    r = verify_signature(
        signing.der, _sign(signing, DATA), data=DATA, policy=replace(test_policy, purpose="login")
    )
    assert r.status is Status.INVALID
    assert "logins need a user-authentication certificate" in r.reasons[1]


def test_override_is_visible(signing: Issued, test_policy: Policy) -> None:
    r = verify_signature(
        signing.der, _sign(signing, DATA), data=DATA, policy=replace(test_policy, purpose="any")
    )
    assert r.status is Status.VALID
    assert any("overridden by the caller" in x for x in r.reasons)


def test_ca_certificate_is_never_a_signer(test_pki: TestPki, test_policy: Policy) -> None:
    ca = test_pki.sign_ca
    r = verify_signature(ca.der, _sign(ca, DATA), data=DATA, policy=test_policy)
    assert r.status is Status.INVALID
    assert any("not an end-user certificate" in x for x in r.reasons)


def test_expired_certificate_with_time(signing: Issued, test_policy: Policy) -> None:
    sig = _sign(signing, DATA)
    late = datetime(2045, 1, 1, tzinfo=UTC)
    r = verify_signature(signing.der, sig, data=DATA, policy=replace(test_policy, at=late))
    assert r.status is Status.INVALID
    assert any("expired" in x for x in r.reasons)
    early = datetime(2000, 1, 1, tzinfo=UTC)
    assert (
        "not valid before"
        in verify_signature(
            signing.der, sig, data=DATA, policy=replace(test_policy, at=early)
        ).reasons[1]
    )
    with pytest.raises(UsageError):
        verify_signature(
            signing.der, sig, data=DATA, policy=replace(test_policy, at=datetime(2026, 1, 1))
        )  # naive


def test_usage_errors(signing: Issued, test_policy: Policy) -> None:
    sig = _sign(signing, DATA)
    with pytest.raises(UsageError):
        verify_signature(signing.der, sig, policy=test_policy)
    with pytest.raises(SignatureFormatError, match="not the sha256 digest of the data"):
        verify_signature(signing.der, sig, data=DATA, digest=b"\0" * 32, policy=test_policy)
    with pytest.raises(UsageError):
        verify_signature(signing.der, sig, digest=b"\0" * 31, policy=test_policy)
    with pytest.raises(UsageError):
        verify_signature(signing.der, sig, data=DATA, hash_alg="md5", policy=test_policy)
    with pytest.raises(UsageError, match="unknown purpose"):
        verify_signature(signing.der, sig, data=DATA, policy=replace(test_policy, purpose="banana"))
    with pytest.raises(UsageError, match="timezone-aware"):
        verify_signature(
            signing.der, sig, data=DATA, policy=replace(test_policy, at=datetime(2026, 6, 1))
        )


def test_non_rsa_key_is_a_clear_error(test_pki: TestPki, test_policy: Policy) -> None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2030, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(CertificateError, match="not RSA"):
        verify_signature(cert, b"\0" * 64, data=DATA, policy=replace(test_policy, purpose="any"))


def test_worst_and_with_reasons() -> None:
    assert worst([]) is Status.VALID
    assert worst([Status.VALID, Status.INDETERMINATE]) is Status.INDETERMINATE
    assert worst([Status.INDETERMINATE, Status.INVALID, Status.VALID]) is Status.INVALID
    r = VerificationResult(Status.VALID, ("a",)).with_reasons("b", status=Status.INDETERMINATE)
    assert r.status is Status.INDETERMINATE and r.reasons == ("a", "b")
    assert r.with_reasons("c", status=Status.VALID).status is Status.INDETERMINATE


# --- DigestInfo --------------------------------------------------------------------------------


@given(st.sampled_from(list(HashAlgorithm)), st.data())
@settings(max_examples=200)
def test_digest_info_round_trip(alg: HashAlgorithm, data: st.DataObject) -> None:
    size = len(hashlib.new(alg.value).digest())
    digest = data.draw(st.binary(min_size=size, max_size=size))
    der = build_digest_info(alg, digest)
    assert der == PREFIXES[alg] + digest
    assert parse_digest_info(der) == DigestInfo(alg, digest)


@given(st.binary(max_size=120))
@settings(max_examples=300)
def test_digest_info_parse_never_crashes(blob: bytes) -> None:
    try:
        parsed = parse_digest_info(blob)
    except JpkiError:
        return
    assert parsed.to_der() == blob  # whatever parses is canonical


@given(st.sampled_from(list(HashAlgorithm)), st.binary(max_size=70), st.binary(max_size=4))
@settings(max_examples=200)
def test_digest_info_strict(alg: HashAlgorithm, digest: bytes, tail: bytes) -> None:
    value = digest + tail
    good = len(value) == len(hashlib.new(alg.value).digest())
    for der in (PREFIXES[alg] + value, PREFIXES_NO_NULL[alg] + value):
        if good and der.startswith(PREFIXES[alg]):
            assert parse_digest_info(der).digest == value
        else:
            with pytest.raises(SignatureFormatError):
                parse_digest_info(der)


def test_digest_info_messages() -> None:
    with pytest.raises(SignatureFormatError, match="without NULL"):
        parse_digest_info(PREFIXES_NO_NULL[HashAlgorithm.SHA256] + b"\0" * 32)
    with pytest.raises(SignatureFormatError, match="not a DER SEQUENCE"):
        parse_digest_info(b"\x04\x20" + b"\0" * 32)
    with pytest.raises(SignatureFormatError):
        DigestInfo(HashAlgorithm.SHA1, b"\0" * 32)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
@pytest.mark.parametrize("name", ["sha1", "sha256", "sha384", "sha512"])
def test_signatures_made_by_openssl(
    signing: Issued, tmp_path: Path, name: str, test_policy: Policy
) -> None:
    from cryptography.hazmat.primitives import serialization

    if name == "sha1":  # old signatures: only under the named opt-in
        test_policy = replace(test_policy, algorithms=LEGACY_ALGORITHMS)

    key = tmp_path / "k.pem"
    key.write_bytes(
        signing.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    doc = tmp_path / "doc"
    doc.write_bytes(DATA)
    # openssl dgst -sign: PKCS#1 v1.5 over DigestInfo(hash(data)).
    sig = subprocess.run(
        ["openssl", "dgst", f"-{name}", "-sign", str(key), str(doc)],
        check=True,
        capture_output=True,
    ).stdout
    assert verify_signature(signing.der, sig, data=DATA, hash_alg=name, policy=test_policy).valid
    # openssl pkeyutl over a precomputed digest (what a card signs): --digest path.
    digest = hashlib.new(name, DATA).digest()
    (tmp_path / "dg").write_bytes(digest)
    sig2 = subprocess.run(
        ["openssl", "pkeyutl", "-sign", "-inkey", str(key), "-in", str(tmp_path / "dg"),
         "-pkeyopt", f"digest:{name}"],
        check=True,
        capture_output=True,
    ).stdout  # fmt: skip
    assert verify_signature(
        signing.der, sig2, digest=digest, hash_alg=name, policy=test_policy
    ).valid
    bad = bytearray(sig2)
    bad[7] ^= 1
    assert verify_signature(
        signing.der, bytes(bad), digest=digest, hash_alg=name, policy=test_policy
    ).status is (Status.INVALID)


@pytest.mark.parametrize("flips", [((1298, 117), (1413, 128)), ((1264, 15),), ((914, 3),)])
def test_undecodable_extensions_are_certificate_errors(
    signing: Issued, flips: tuple[tuple[int, int], ...], test_policy: Policy
) -> None:
    # cryptography raises KeyError / TypeError for some damaged names inside extensions.
    from jpki.verify import BatchItem, verify_batch

    der = bytearray(signing.der)
    for off, xor in flips:
        der[off] ^= xor
    sig = _sign(signing, DATA)
    r1 = verify_signature(bytes(der), sig, data=DATA, policy=test_policy)
    assert r1.status is Status.INVALID
    assert any(x.code is Code.CERT_MALFORMED and "cannot be decoded" in x for x in r1.reasons)
    (r,) = verify_batch([BatchItem(bytes(der), sig, data=DATA)])
    assert r.status is Status.INVALID and r.has(Code.CERT_MALFORMED)


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_damaged_certificate_is_a_certificate_error_or_a_result(
    signing: Issued, test_policy: Policy, data: st.DataObject
) -> None:
    # Damage in the second half of the certificate: extensions, signature.
    from jpki.verify import BatchItem, verify_batch

    der = bytearray(signing.der)
    for _ in range(data.draw(st.integers(1, 3))):
        der[data.draw(st.integers(len(der) // 2, len(der) - 1))] ^= data.draw(st.integers(1, 255))
    sig = _sign(signing, DATA)
    try:
        r = verify_signature(
            bytes(der),
            sig,
            data=DATA,
            policy=replace(test_policy, at=datetime(2026, 6, 1, tzinfo=UTC)),
        )
    except JpkiError:
        pass
    else:
        assert r.status in set(Status) and r.reasons
    (b,) = verify_batch([BatchItem(bytes(der), sig, data=DATA)])
    assert b.status in set(Status) and b.reasons
