"""Fuzz OCSP response parsing and checking for one certificate of the deterministic test PKI."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from _harness import fuzz_main, guarded

from jpki.revocation.ocsp import parse_response
from jpki.testing.pki import Issued, TestPki, sample_person

NAME = "ocsp"


@cache
def context() -> tuple[Issued, Issued, datetime]:
    """(certificate asked about, its issuing CA, validation time) — the seeds answer for it."""
    pki = TestPki()
    return pki.issue_signing(sample_person(0)), pki.ca("sign"), pki.now


@guarded
def target(data: bytes) -> None:
    cert, ca, now = context()
    result = parse_response(data, cert.cert, ca.cert, at=now, nonce=None)
    assert result.status is not None


if __name__ == "__main__":
    fuzz_main(NAME, target)
