"""OCSP: build a request with a nonce, POST it, and trust the answer only after checking it.

Accepted signers: the issuing CA itself, or a delegated responder certificate issued by that
CA with id-kp-OCSPSigning, valid at the time. The nonce must come back unchanged, and
thisUpdate/nextUpdate must bracket the time within the clock-skew tolerance.
"""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from jpki.errors import OcspError, UsageError
from jpki.revocation.crl import CertLike, as_x509
from jpki.revocation.index import RevocationReason, RevokedEntry, expect, read_header
from jpki.revocation.policy import RevocationResult, RevocationStatus, result_from_entry

MAX_RESPONSE = 1 << 20  # an OCSP response is a few KB; refuse to buffer more


def build_request(cert: CertLike, issuer: CertLike, nonce: bytes | None = None) -> bytes:
    """DER OCSPRequest for ``cert`` (SHA-1 CertID, as every responder understands)."""
    b = ocsp.OCSPRequestBuilder().add_certificate(
        as_x509(cert),
        as_x509(issuer),
        hashes.SHA1(),  # noqa: S303 - CertID hash, RFC 6960 default; not a signature
    )
    if nonce is not None:
        b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
    return b.build().public_bytes(serialization.Encoding.DER)


def post(url: str, body: bytes, *, timeout: float) -> bytes:
    """HTTP POST with a timeout; any network failure is an OcspError."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"OCSP URL must be http(s): {url!r}")
    req = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=body, headers={"Content-Type": "application/ocsp-request"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            data: bytes = resp.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        raise OcspError(f"OCSP responder answered HTTP {exc.code}") from None
    except TimeoutError:
        raise OcspError(f"OCSP responder did not answer within {timeout:g} s") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError | socket.timeout):
            raise OcspError(f"OCSP responder did not answer within {timeout:g} s") from None
        raise OcspError(f"cannot reach OCSP responder: {reason}") from None
    if len(data) > MAX_RESPONSE:
        raise OcspError("OCSP response too large")
    return data


def _key_hash(cert: x509.Certificate, alg: hashes.HashAlgorithm) -> bytes:
    # RFC 6960: hash of the subjectPublicKey BIT STRING value (no tag/length, no unused-bits).
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    buf = memoryview(spki)
    s, e = expect(buf, 0, len(buf), 0x30, "SubjectPublicKeyInfo")
    _, _, p = read_header(buf, s, e)
    bs, be = expect(buf, p, e, 0x03, "subjectPublicKey")
    return hashlib.new(alg.name, bytes(buf[bs + 1 : be])).digest()


def _verify_sig(
    signer: x509.Certificate, sig: bytes, data: bytes, alg: hashes.HashAlgorithm | None
) -> bool:
    key = signer.public_key()
    if alg is None:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, data, padding.PKCS1v15(), alg)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(alg))
            return True
    except InvalidSignature:
        return False
    return False


def _responder_matches(resp: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if resp.responder_key_hash is not None:
        return resp.responder_key_hash == _key_hash(cert, hashes.SHA1())  # noqa: S303
    return resp.responder_name == cert.subject


def _find_signer(
    resp: ocsp.OCSPResponse, issuer: x509.Certificate, at: datetime
) -> x509.Certificate:
    if _responder_matches(resp, issuer):
        return issuer
    for cand in resp.certificates:
        if not _responder_matches(resp, cand):
            continue
        if cand.issuer != issuer.subject:
            raise OcspError("delegated OCSP responder certificate not issued by the CA")
        try:
            cand.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            raise OcspError("delegated OCSP responder certificate not signed by the CA") from None
        try:
            eku = cand.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = None
        if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            raise OcspError("delegated OCSP responder lacks id-kp-OCSPSigning")
        if not cand.not_valid_before_utc <= at <= cand.not_valid_after_utc:
            raise OcspError("delegated OCSP responder certificate not valid at the time")
        return cand
    raise OcspError("OCSP response not signed by the CA or an authorised responder")


def parse_response(
    data: bytes,
    cert: CertLike,
    issuer: CertLike,
    *,
    at: datetime,
    nonce: bytes | None,
    skew: timedelta = timedelta(minutes=5),
    source: str = "ocsp",
) -> RevocationResult:
    """Verify a DER OCSPResponse for ``cert``; raise OcspError for anything untrustworthy."""
    c, ca = as_x509(cert), as_x509(issuer)
    try:
        resp = ocsp.load_der_ocsp_response(data)
    except ValueError as exc:
        raise OcspError(f"malformed OCSP response: {exc}") from None
    if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"OCSP responder refused: {resp.response_status.name.lower()}")
    try:
        signer = _find_signer(resp, ca, at)
        if not _verify_sig(
            signer, resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm
        ):
            raise OcspError("OCSP response signature does not verify")
        if nonce is not None:
            try:
                got = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
            except x509.ExtensionNotFound:
                raise OcspError("OCSP response carries no nonce") from None
            if got != nonce:
                raise OcspError("OCSP nonce mismatch (replayed or misrouted response)")
        single = None
        for sr in resp.responses:
            if sr.serial_number == c.serial_number and sr.issuer_key_hash == _key_hash(
                ca, sr.hash_algorithm
            ):
                single = sr
                break
        if single is None:
            raise OcspError("OCSP response does not cover the certificate asked about")
        this_update = single.this_update_utc
        next_update = single.next_update_utc
        status = single.certificate_status
        reason_flag = single.revocation_reason if status is ocsp.OCSPCertStatus.REVOKED else None
        revoked_at = single.revocation_time_utc if status is ocsp.OCSPCertStatus.REVOKED else None
    # KeyError / UnsupportedGeneralNameType: cryptography decoding a malformed responder Name
    # or extension (found by tests/fuzz/fuzz_ocsp).
    except (
        ValueError,
        TypeError,
        KeyError,
        UnsupportedAlgorithm,
        x509.UnsupportedGeneralNameType,
    ) as exc:
        raise OcspError(f"malformed OCSP response: {exc!r}") from None
    if this_update > at + skew:
        raise OcspError(f"OCSP response thisUpdate {this_update.isoformat()} is in the future")
    if next_update is not None and next_update < at - skew:
        raise OcspError(f"OCSP response expired (nextUpdate {next_update.isoformat()})")
    if next_update is None and this_update < at - skew and nonce is None:
        raise OcspError("OCSP response has no nextUpdate and is not fresh")
    if status is ocsp.OCSPCertStatus.UNKNOWN:
        return RevocationResult(
            RevocationStatus.UNKNOWN, source=source, detail="responder: unknown"
        )
    if status is ocsp.OCSPCertStatus.GOOD:
        return RevocationResult(RevocationStatus.GOOD, source=source, detail="responder: good")
    assert revoked_at is not None
    reason = RevocationReason(reason_flag.value) if reason_flag is not None else None
    return result_from_entry(RevokedEntry(c.serial_number, revoked_at, reason), at, source)


def check_ocsp(
    cert: CertLike,
    issuer: CertLike,
    url: str,
    *,
    at: datetime,
    timeout: float = 10.0,
    skew: timedelta = timedelta(minutes=5),
) -> RevocationResult:
    """Ask ``url`` about ``cert`` with a fresh nonce and return the verified answer."""
    nonce = os.urandom(16)
    data = post(url, build_request(cert, issuer, nonce), timeout=timeout)
    return parse_response(data, cert, issuer, at=at, nonce=nonce, skew=skew, source=f"ocsp:{url}")
