"""CRL scale benchmark: jpki's load + verify + index against references in the same run.

For each size N (default 10^6; ``--quick`` 10^5; ``--big`` adds 10^7) a synthetic CRL is
written with numpy (``jpki.testing.crl``), signed by the deterministic test CA, then:

* openssl   : ``openssl crl -inform DER -noout -in FILE`` wall time (best of 3; 1 at 10^7)
* jpki      : ``Crl.from_file`` (read, header, vectorised walk, serial index) + ``verify``
              (SHA-256 over the raw TBS slice + one RSA verify), in process, best of 3
* lookup    : ``crl.lookup(serial)`` µs per call, hits and misses (decodes the hit entry)
* memory    : peak RSS (VmHWM) of a fresh process doing only ``Crl.from_file`` + ``verify``,
              against the DER size and against ``openssl crl`` doing the same file; cold (the
              file evicted from the page cache first) and warm; also ``Crl.load(bytes)``.
              ``from_file`` maps the file and drops walked pages from the resident set (they
              stay in the page cache), so its peak is the index plus bounded temporaries
* store     : SQLite ``RevocationStore.load`` (cold: verify + index + write), then a NEW
              process answering its first check from the persisted index (warm start)
* pyhanko   : one ``CertificateValidator`` validation with ``revocation_mode='hard-fail'``
              and the same CRL (first and repeat), against jpki's chain + revocation check
              (``--pyhanko-n``, default 10^5: it takes seconds per validation at 10^6)

Ratios < 1 mean jpki is faster / smaller. Tests never assert on these numbers.

Usage: ``python bench/bench_crl.py [--quick] [--big] [--json] [--sizes N ...] [--pyhanko-n N]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_crl import NOW, make

from jpki.revocation.crl import Crl
from jpki.revocation.policy import RevocationStatus, check_revocation
from jpki.testing.pki import sample_person

AT = NOW + timedelta(hours=1)


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _openssl_crl(path: Path) -> None:
    subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-noout", "-in", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a child started from this big
# process would report the parent's size. (openssl is started from a small wrapper below.)
_MEM_OURS = """
import json, sys, time
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
from cryptography import x509
from jpki.revocation.crl import Crl
ca = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
base = hwm()
t = time.perf_counter()
if sys.argv[3] == "bytes":
    crl = Crl.load(open(sys.argv[1], "rb").read())
else:
    crl = Crl.from_file(sys.argv[1])
crl.verify([ca])
dt = time.perf_counter() - t
print(json.dumps({"base_kb": base, "peak_kb": hwm(),
                  "seconds": dt, "entries": len(crl), "index_bytes": crl.index.nbytes()}))
"""

_MEM_OPENSSL = """
import json, resource, subprocess, sys
subprocess.run(["openssl", "crl", "-inform", "DER", "-noout", "-in", sys.argv[1]], check=True)
print(json.dumps({"peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

_WARM = """
import json, sys, time
t0 = time.perf_counter()
from cryptography import x509
from jpki.revocation.store import RevocationStore
t1 = time.perf_counter()
ca = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
leaf = x509.load_pem_x509_certificate(open(sys.argv[3], "rb").read())
st = RevocationStore(sys.argv[1])
from datetime import datetime
res = st.check(leaf, ca, at=datetime.fromisoformat(sys.argv[4]))
t2 = time.perf_counter()
n = 200
for _ in range(n):
    st.check(leaf, ca, at=datetime.fromisoformat(sys.argv[4]))
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_answer_s": t2 - t1, "status": res.status.value,
                  "check_us": (t3 - t2) / n * 1e6}))
"""


def _evict(path: Path) -> None:
    """Drop the file's pages from the page cache (a cold start without root or drop_caches).

    Dirty pages are not dropped: the freshly written file is synced first."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _py(script: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", script, *args], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _pyhanko(ca_der: bytes, leaf_der: bytes, crl_der: bytes) -> tuple[float, float, str]:
    from asn1crypto import x509 as ax
    from pyhanko_certvalidator import CertificateValidator, ValidationContext

    vc = ValidationContext(
        trust_roots=[ax.Certificate.load(ca_der)],
        crls=[crl_der],
        revocation_mode="hard-fail",
        moment=AT,
    )
    times = []
    outcome = ""
    for _ in range(2):
        v = CertificateValidator(ax.Certificate.load(leaf_der), validation_context=vc)
        t = time.perf_counter()
        try:
            asyncio.run(v.async_validate_usage(set()))
            outcome = "valid"
        except Exception as exc:  # RevokedError / PathValidationError: the outcome, not a failure
            outcome = type(exc).__name__
        times.append(time.perf_counter() - t)
    return times[0], times[1], outcome


def _row(name: str, value: float, unit: str, ref: str, ref_value: float) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "reference": ref,
        "reference_value": ref_value,
        "ratio": value / ref_value if ref_value else None,
    }


def bench_size(
    n: int, tmp: Path, *, pyhanko_n: int, big: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    r: dict[str, Any] = {"n": n}
    t = time.perf_counter()
    syn, pki = make(n)
    r["generate_s"] = time.perf_counter() - t
    path = tmp / f"crl_{n}.der"
    path.write_bytes(syn.der)
    ca_pem = tmp / "ca.pem"
    ca_pem.write_bytes(pki.sign_ca.pem)
    r["der_bytes"] = len(syn.der)
    log(f"N={n:,}: generated {len(syn.der):,} bytes in {r['generate_s']:.2f} s")
    repeat = 1 if n >= 5_000_000 else 3

    r["openssl_s"] = _best(lambda: _openssl_crl(path), repeat)
    ca = pki.sign_ca.cert
    holder: dict[str, Crl] = {}

    def ours() -> None:
        c = Crl.from_file(path)
        c.verify([ca])
        holder["crl"] = c

    r["jpki_s"] = _best(ours, repeat)
    r["ratio_load_vs_openssl"] = r["jpki_s"] / r["openssl_s"]
    log(
        f"  openssl crl -noout {r['openssl_s']:.3f} s | jpki load+verify+index {r['jpki_s']:.3f} s"
        f" | ratio {r['ratio_load_vs_openssl']:.3f}"
    )
    crl = holder["crl"]
    assert len(crl) == n

    rng = np.random.default_rng(7)
    hits = [int(s) for s in rng.choice(syn.serials, size=min(20000, n), replace=False)]
    misses = [int(s) | (1 << 45) for s in hits]  # above the 40-bit serial range: never listed
    t = time.perf_counter()
    found = sum(crl.lookup(s) is not None for s in hits)
    r["lookup_hit_us"] = (time.perf_counter() - t) / len(hits) * 1e6
    t = time.perf_counter()
    found_miss = sum(crl.lookup(s) is not None for s in misses)
    r["lookup_miss_us"] = (time.perf_counter() - t) / len(misses) * 1e6
    assert found == len(hits) and found_miss == 0
    r["index_bytes_per_entry"] = crl.index.nbytes() / n
    log(
        f"  lookup {r['lookup_hit_us']:.1f} µs (hit, entry decoded) / {r['lookup_miss_us']:.1f} µs"
        f" (miss); index {r['index_bytes_per_entry']:.1f} B/entry"
    )

    if n <= 2_000_000:
        from cryptography import x509

        def crypto() -> None:
            c = x509.load_der_x509_crl(syn.der)
            assert c.is_signature_valid(pki.sign_ca.key.public_key())

        r["cryptography_s"] = _best(crypto, 1)
        cr = x509.load_der_x509_crl(syn.der)
        probe = hits[:5]
        t = time.perf_counter()
        assert all(cr.get_revoked_certificate_by_serial_number(s) is not None for s in probe)
        r["cryptography_lookup_us"] = (time.perf_counter() - t) / len(probe) * 1e6
        log(
            f"  cryptography load + is_signature_valid {r['cryptography_s']:.3f} s;"
            f" get_revoked_certificate_by_serial_number {r['cryptography_lookup_us'] / 1e3:.1f} ms"
        )

    _evict(path)
    cold = _py(_MEM_OURS, str(path), str(ca_pem), "file")
    mem = _py(_MEM_OURS, str(path), str(ca_pem), "file")  # warm: the cold run cached the file
    from_bytes = _py(_MEM_OURS, str(path), str(ca_pem), "bytes")
    memo = _py(_MEM_OPENSSL, str(path))
    r["jpki_peak_mb"] = mem["peak_kb"] / 1024
    r["jpki_base_mb"] = mem["base_kb"] / 1024
    r["jpki_cold_peak_mb"] = cold["peak_kb"] / 1024
    r["jpki_cold_s"] = cold["seconds"]
    r["jpki_bytes_peak_mb"] = from_bytes["peak_kb"] / 1024
    r["openssl_peak_mb"] = memo["peak_kb"] / 1024
    r["ratio_peak_vs_der"] = mem["peak_kb"] * 1024 / len(syn.der)
    r["ratio_peak_above_base_vs_der"] = (mem["peak_kb"] - mem["base_kb"]) * 1024 / len(syn.der)
    r["ratio_cold_peak_vs_der"] = cold["peak_kb"] * 1024 / len(syn.der)
    r["ratio_bytes_peak_vs_der"] = from_bytes["peak_kb"] * 1024 / len(syn.der)
    r["ratio_peak_vs_openssl"] = mem["peak_kb"] / memo["peak_kb"]
    r["jpki_fresh_process_s"] = mem["seconds"]
    der_mb = len(syn.der) / 2**20
    log(
        f"  peak RSS from_file: warm {r['jpki_peak_mb']:.0f} MB, cold {r['jpki_cold_peak_mb']:.0f}"
        f" MB (imports {r['jpki_base_mb']:.0f} MB) vs DER {der_mb:.0f} MB ->"
        f" {r['ratio_peak_vs_der']:.2f}x DER warm, {r['ratio_cold_peak_vs_der']:.2f}x cold"
        f" ({r['ratio_peak_above_base_vs_der']:.2f}x above imports); fresh process"
        f" {mem['seconds']:.2f} s warm / {cold['seconds']:.2f} s cold"
    )
    log(
        f"  peak RSS Crl.load(bytes) {r['jpki_bytes_peak_mb']:.0f} MB"
        f" ({r['ratio_bytes_peak_vs_der']:.2f}x DER); openssl {r['openssl_peak_mb']:.0f} MB"
    )

    # store: cold load, then a new process answering from the persisted index
    leaf = pki.issue_signing(sample_person(0), label=f"bench-{n}", serial=int(syn.serials[n // 2]))
    leaf_pem = tmp / "leaf.pem"
    leaf_pem.write_bytes(leaf.pem)
    from jpki.revocation.store import RevocationStore

    db = tmp / f"store_{n}.db"
    t = time.perf_counter()
    with RevocationStore(db) as st:
        st.load(Crl.from_file(path), [ca])
    r["store_cold_load_s"] = time.perf_counter() - t
    warm = _py(_WARM, str(db), str(ca_pem), str(leaf_pem), AT.isoformat())
    assert warm["status"] == "revoked", warm
    r["store_warm_first_answer_s"] = warm["first_answer_s"]
    r["store_warm_check_us"] = warm["check_us"]
    r["ratio_store_warm_vs_cold"] = warm["first_answer_s"] / r["store_cold_load_s"]
    log(
        f"  store: cold load {r['store_cold_load_s']:.2f} s; new process first answer"
        f" {warm['first_answer_s'] * 1e3:.1f} ms (after imports),"
        f" then {warm['check_us']:.0f} µs/check"
    )

    if n <= pyhanko_n:
        leaf_x = leaf.cert

        def ours_validation(fresh: bool) -> float:
            t = time.perf_counter()
            c = Crl.from_file(path) if fresh else crl
            leaf_x.verify_directly_issued_by(ca)
            res = check_revocation(leaf_x, ca, crls=[c], at=AT)
            assert res.status is RevocationStatus.REVOKED
            return time.perf_counter() - t

        first, repeat_t, outcome = _pyhanko(pki.sign_ca.der, leaf.der, syn.der)
        r["pyhanko_first_s"], r["pyhanko_repeat_s"], r["pyhanko_outcome"] = first, repeat_t, outcome
        r["jpki_validation_first_s"] = ours_validation(True)
        r["jpki_validation_repeat_s"] = min(ours_validation(False) for _ in range(5))
        r["ratio_validation_first_vs_pyhanko"] = r["jpki_validation_first_s"] / first
        r["ratio_validation_repeat_vs_pyhanko"] = r["jpki_validation_repeat_s"] / repeat_t
        log(
            f"  validation with revocation: pyhanko {first:.3f} s first / {repeat_t:.3f} s repeat"
            f" ({outcome}); jpki {r['jpki_validation_first_s']:.3f} s /"
            f" {r['jpki_validation_repeat_s'] * 1e6:.0f} µs"
        )
    path.unlink()
    db.unlink()
    return r


def rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        n = f"{r['n']:.0e}".replace("+0", "")
        out.append(
            _row(
                f"CRL {n}: load+verify+index",
                r["jpki_s"],
                "s",
                "openssl crl -noout",
                r["openssl_s"],
            )
        )
        out.append(
            _row(
                f"CRL {n}: peak RSS above the interpreter + imports",
                r["jpki_peak_mb"] - r["jpki_base_mb"],
                "MB",
                "DER size (MB)",
                r["der_bytes"] / 2**20,
            )
        )
        out.append(
            _row(
                f"CRL {n}: peak RSS (from_file, warm)",
                r["jpki_peak_mb"],
                "MB",
                "DER size (MB)",
                r["der_bytes"] / 2**20,
            )
        )
        out.append(
            _row(
                f"CRL {n}: peak RSS (from_file, cold)",
                r["jpki_cold_peak_mb"],
                "MB",
                "DER size (MB)",
                r["der_bytes"] / 2**20,
            )
        )
        out.append(
            _row(
                f"CRL {n}: peak RSS",
                r["jpki_peak_mb"],
                "MB",
                "openssl crl peak RSS",
                r["openssl_peak_mb"],
            )
        )
        if "cryptography_lookup_us" in r:
            out.append(
                _row(
                    f"CRL {n}: lookup (hit, entry decoded)",
                    r["lookup_hit_us"],
                    "µs",
                    "cryptography get_revoked_certificate_by_serial_number",
                    r["cryptography_lookup_us"],
                )
            )
        out.append(
            _row(
                f"CRL {n}: store warm first answer",
                r["store_warm_first_answer_s"],
                "s",
                "store cold load",
                r["store_cold_load_s"],
            )
        )
        if "pyhanko_first_s" in r:
            out.append(
                _row(
                    f"CRL {n}: validation+revocation, first",
                    r["jpki_validation_first_s"],
                    "s",
                    "pyhanko-certvalidator first",
                    r["pyhanko_first_s"],
                )
            )
            out.append(
                _row(
                    f"CRL {n}: validation+revocation, repeat",
                    r["jpki_validation_repeat_s"],
                    "s",
                    "pyhanko-certvalidator repeat",
                    r["pyhanko_repeat_s"],
                )
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^5 entries only")
    ap.add_argument("--big", action="store_true", help="also 10^7 entries (takes minutes)")
    ap.add_argument("--sizes", type=int, nargs="*", help="explicit sizes")
    ap.add_argument("--pyhanko-n", type=int, default=100_000, help="largest N for pyhanko")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    sizes = a.sizes or ([100_000] if a.quick else [1_000_000])
    if a.big and 10_000_000 not in sizes:
        sizes.append(10_000_000)
    log: Callable[[str], None] = (lambda s: print(s, file=sys.stderr)) if a.json else print
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_crl_") as d:
        for n in sizes:
            results.append(bench_size(n, Path(d), pyhanko_n=a.pyhanko_n, big=a.big, log=log))
    main_r = results[0]
    summary: dict[str, Any] = {
        "sizes": sizes,
        "results": results,
        "rows": rows(results),
        "ratio_load_vs_openssl": main_r["ratio_load_vs_openssl"],
        "cpu_count": os.cpu_count(),
    }
    if a.json:
        print(json.dumps(summary, default=float))
    else:
        print("\nratios (jpki / reference, < 1 is better):")
        for row in summary["rows"]:
            print(
                f"  {row['name']}: {row['ratio']:.4f}  ({row['value']:.4g} {row['unit']}"
                f" vs {row['reference']} {row['reference_value']:.4g})"
            )


if __name__ == "__main__":
    main()
