"""Write an N-entry synthetic CRL (DER) signed by the deterministic test sign CA.

Usage: ``python bench/gen_crl.py N OUT.crl [--seed S] [--serial-bits B] [--reasons F]``;
also writes ``OUT.crl.ca.pem`` (the issuer) and ``OUT.crl.serials.npy`` (the revoked serials).
The entries are written with numpy (seconds for 10^6), see ``jpki.testing.crl``.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from cryptography import x509

from jpki.testing.crl import Synthetic, synthetic_crl
from jpki.testing.pki import TestPki

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def make(
    n: int, *, seed: int = 1, serial_bits: int = 40, reasons: float = 0.5
) -> tuple[Synthetic, TestPki]:
    pki = TestPki(now=NOW)
    ca = pki.sign_ca
    syn = synthetic_crl(
        n,
        ca.key,
        ca.cert.subject,
        this_update=NOW,
        next_update=NOW + timedelta(days=2),
        number=n,
        seed=seed,
        reason_fraction=reasons,
        serial_bits=serial_bits,
        extensions=[x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())],
    )
    return syn, pki


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--serial-bits", type=int, default=40)
    ap.add_argument("--reasons", type=float, default=0.5, help="fraction of entries with a reason")
    a = ap.parse_args()
    t = time.perf_counter()
    syn, pki = make(a.n, seed=a.seed, serial_bits=a.serial_bits, reasons=a.reasons)
    a.out.write_bytes(syn.der)
    Path(f"{a.out}.ca.pem").write_bytes(pki.sign_ca.pem)
    np.save(f"{a.out}.serials.npy", syn.serials)
    took = time.perf_counter() - t
    print(f"{a.out}: {a.n} entries, {len(syn.der):,} bytes, {took:.2f} s")


if __name__ == "__main__":
    main()
