#!/usr/bin/env python3
"""Regenerate vectors/pki/ and vectors/sim/profile/: a small test PKI and a card profile.

    python vectors/make_pki_vectors.py [--check]

All of it comes from ``jpki.testing.pki.TestPki()`` (seed "jpki-test", generation 2023, its default
"now" 2026-01-01T00:00Z) and ``jpki.sim.create.build_profile()`` (person 0, default PINs), so
the output is byte-identical on every run (RSA keys derive from the seed; PKCS#1 v1.5
signatures are deterministic). ``--check`` exits 1 if a committed file differs.
tests/test_testpki.py checks the committed files against a fresh build.

Files (PEM certificates, DER CRL):
  pki/sign-ca.pem, pki/auth-ca.pem    the two CAs
  pki/sign.pem, pki/auth.pem          person 0's signing and authentication certificates
  pki/ocsp-responder.pem              delegated OCSP responder of the signing CA
  pki/sign-ca.crl                     signing CA CRL: person 0's certificate revoked
                                      (keyCompromise) and serial 0x1001 (no reason code)
  sim/profile/profile.json, state.json   the simulated card of person 0 (test keys, PINs)
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from jpki.sim.create import build_profile
from jpki.sim.profile import CardState
from jpki.testing.pki import TestPki, sample_person

HERE = Path(__file__).resolve().parent


def _json(data: object) -> bytes:
    # The same serialisation as a profile directory written by `jpki sim create`.
    return (json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False) + "\n").encode()


def build() -> dict[str, bytes]:
    """Relative path -> file content."""
    pki = TestPki()
    person = sample_person(0)
    sign = pki.issue_signing(person)
    auth = pki.issue_auth(person=person)
    revoked_at = pki.now - timedelta(days=10)
    crl = pki.make_crl(
        "sign",
        [
            (sign.cert.serial_number, x509.ReasonFlags.key_compromise, revoked_at),
            (0x1001, None, revoked_at),
        ],
        number=1,
    )
    profile = build_profile()
    return {
        "pki/sign-ca.pem": pki.sign_ca.pem,
        "pki/auth-ca.pem": pki.auth_ca.pem,
        "pki/sign.pem": sign.pem,
        "pki/auth.pem": auth.pem,
        "pki/ocsp-responder.pem": pki.issue_ocsp_responder("sign").pem,
        "pki/sign-ca.crl": crl,
        "sim/profile/profile.json": _json(profile.to_json()),
        "sim/profile/state.json": _json(CardState.fresh(profile).to_json()),
    }


def main() -> int:
    files = build()
    if "--check" in sys.argv[1:]:
        stale = [n for n, data in files.items() if not (HERE / n).is_file()
                 or (HERE / n).read_bytes() != data]  # fmt: skip
        print("up to date" if not stale else f"differ from a fresh build: {', '.join(stale)}")
        return 1 if stale else 0
    for name, data in files.items():
        path = HERE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
