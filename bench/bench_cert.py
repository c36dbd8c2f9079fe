"""Certificate model cost: jpki.cert field reads vs cryptography's decode, in the same run.

For a test-PKI signing certificate and a real J-LIS root (the built-in ``jpki/trust/jlis_roots``):

* reference : ``x509.load_der_x509_certificate(der).extensions`` (what reading any one
              extension through cryptography costs: it decodes all of them)
* kind      : ``JpkiCertificate.load(der)`` then ``.kind`` and ``.is_test``
* basic     : ``.kind`` and ``.basic_info`` (basic 4 information from the SAN otherNames)
* all       : ``.as_dict()`` (every field, as ``jpki cert show --json``)

Prints µs per call (best of 15) and the ratio to the reference; < 1 means jpki is cheaper.
Usage: ``python bench/bench_cert.py [-n N]``
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from jpki.cert import JpkiCertificate
from jpki.testing.pki import TestPki, sample_person

ROOT = Path(__file__).resolve().parents[1] / "src/jpki/trust/jlis_roots/sign_ca_2023.pem"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="calls per timing (default 2000)")
    n = ap.parse_args().n
    cases = {"test signing": TestPki().issue_signing(sample_person(0)).der}
    if ROOT.exists():
        cases["J-LIS root"] = JpkiCertificate.load(ROOT.read_bytes()).der
    for label, der in cases.items():
        fns: dict[str, Callable[[], object]] = {
            "reference": lambda d=der: x509.load_der_x509_certificate(d).extensions,
            "kind": lambda d=der: _kind(JpkiCertificate.load(d)),
            "basic": lambda d=der: _basic(JpkiCertificate.load(d)),
            "all": lambda d=der: JpkiCertificate.load(d).as_dict(),
        }
        times = {k: min(timeit.repeat(f, number=n, repeat=15)) / n * 1e6 for k, f in fns.items()}
        ref = times["reference"]
        for k, t in times.items():
            print(f"{label:13s} {k:10s} {t:7.1f} µs  {t / ref:5.2f}x")


def _kind(c: JpkiCertificate) -> object:
    return c.kind, c.is_test


def _basic(c: JpkiCertificate) -> object:
    return c.kind, c.basic_info


if __name__ == "__main__":
    main()
