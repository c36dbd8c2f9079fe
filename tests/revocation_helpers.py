"""Constants and CRL builders shared by the CRL and revocation-store tests (fixtures: conftest)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from jpki.testing.pki import TestPki

# The fixed clock of the ``pki`` / ``pki_2015`` fixtures and of the CRLs those tests make.
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PKI_2015_NOW = datetime(2024, 3, 1, tzinfo=UTC)
R = x509.ReasonFlags


def crl_with_ext(
    pki: TestPki,
    ext: x509.ExtensionType,
    *,
    critical: bool = True,
    number: int = 1,
    serials: Iterable[int] = (),
) -> bytes:
    """A signing-CA CRL (NOW, one day) carrying ``ext`` besides its CRL number."""
    ca = pki.sign_ca
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(NOW)
        .next_update(NOW + timedelta(days=1))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(ext, critical=critical)
    )
    for s in serials:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(s).revocation_date(NOW).build()
        )
    return b.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def make_idp(**kw: object) -> x509.IssuingDistributionPoint:
    """An IssuingDistributionPoint with everything off except ``kw``."""
    args: dict[str, object] = {
        "full_name": None,
        "relative_name": None,
        "only_contains_user_certs": False,
        "only_contains_ca_certs": False,
        "only_some_reasons": None,
        "indirect_crl": False,
        "only_contains_attribute_certs": False,
    }
    args.update(kw)
    return x509.IssuingDistributionPoint(**args)  # type: ignore[arg-type]
