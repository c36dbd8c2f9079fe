"""Attacker-made certificates: self-signed, with the JPKI policy OIDs and KeyUsage bits."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from jpki.cert import JpkiCertificate

AUTH_POLICY = "1.2.392.200149.8.5.1.3.30"
SIGN_POLICY = "1.2.392.200149.8.5.1.1.20"


def forged(
    policy: str = AUTH_POLICY,
    *,
    ca: bool = False,
    non_repudiation: bool = False,
    key_size: int = 2048,
) -> tuple[rsa.RSAPrivateKey, JpkiCertificate]:
    """A self-signed certificate claiming a JPKI policy (kind decided by the policy OID)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.COMMON_NAME, "forged"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2030, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=non_repudiation,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(policy), None)]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return key, JpkiCertificate.from_cryptography(cert)
