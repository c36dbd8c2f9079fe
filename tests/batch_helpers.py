"""A test CA that certifies arbitrary public keys (batch, native loop and Wycheproof tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from jpki.testing.pki import TestPki

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@cache
def certifying_ca() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """The test PKI's signing CA as of ``NOW``: certificate and key."""
    ca = TestPki(now=NOW).sign_ca
    assert isinstance(ca.key, rsa.RSAPrivateKey)
    return ca.cert, ca.key


def certify(public_key: object, serial: int, label: str) -> bytes:
    """DER of a signing-shaped certificate for ``public_key`` under :func:`certifying_ca`."""
    ca_cert, ca_key = certifying_ca()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{label} {serial}")]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(serial)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)
