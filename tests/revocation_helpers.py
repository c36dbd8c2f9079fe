"""Constants shared by the CRL and revocation-store tests (their fixtures are in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509

# The fixed clock of the ``pki`` / ``pki_2015`` fixtures and of the CRLs those tests make.
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PKI_2015_NOW = datetime(2024, 3, 1, tzinfo=UTC)
R = x509.ReasonFlags
