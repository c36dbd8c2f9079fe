"""Command-line start-up, each against a reference measured in the same run.

* ``jpki --version`` wall time vs ``python3 -c pass`` (the interpreter's own start-up);
* a cold ``jpki revocation check CERT --issuer CA --crl FILE`` on a fresh 10^6-entry CRL
  (a new process, a CRL file written just before and never read by this process: no index
  or import cache of ours is warm) vs ``openssl crl -inform DER -noout -in FILE``.

Both sides run as new processes, interleaved, best of ``--repeat``.

Usage: ``python bench/bench_cli.py [--quick] [--json] [--entries N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _wall(cmd: list[str], *, ok: tuple[int, ...] = (0,)) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(), capture_output=True, check=False)
    took = time.perf_counter() - t
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr[-300:]!r}")
    return took


def _evict(path: Path) -> None:
    """Drop the file's pages from the page cache, so both sides read it from disk alike."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _row(name: str, value: float, ref: str, ref_value: float) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "unit": "s",
        "reference": ref,
        "reference_value": ref_value,
        "ratio": value / ref_value,
        "better": "lower",
    }


def bench_version(repeat: int) -> dict[str, Any]:
    jpki = [sys.executable, "-m", "jpki", "--version"]
    ref = [sys.executable, "-c", "pass"]
    ours, base = [], []
    for _ in range(repeat):
        base.append(_wall(ref))
        ours.append(_wall(jpki))
    return _row("jpki --version", min(ours), "python3 -c pass", min(base))


def bench_cold_check(entries: int, repeat: int) -> dict[str, Any]:
    sys.path.insert(0, str(SRC))
    sys.path.insert(0, str(HERE))
    from gen_crl import NOW, make  # type: ignore[import-not-found]

    from jpki.testing.pki import TestPki

    syn, pki = make(entries)
    leaf = TestPki(now=NOW).issue_signing()
    tmp = Path(tempfile.mkdtemp(prefix="jpki-bench-cli-"))
    try:
        (tmp / "ca.pem").write_bytes(pki.sign_ca.pem)
        (tmp / "leaf.pem").write_bytes(leaf.pem)
        ours, base = [], []
        for i in range(repeat):
            # A fresh file each round: nothing of it is cached by either side.
            crl = tmp / f"fresh-{i}.crl"
            crl.write_bytes(syn.der)
            _evict(crl)
            base.append(_wall(["openssl", "crl", "-inform", "DER", "-noout", "-in", str(crl)]))
            _evict(crl)
            cmd = [sys.executable, "-m", "jpki", "revocation", "check", str(tmp / "leaf.pem")]
            cmd += ["--issuer", str(tmp / "ca.pem"), "--crl", str(crl)]
            cmd += ["--at", NOW.isoformat()]
            ours.append(_wall(cmd, ok=(0, 1)))
            crl.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    row = _row(
        f"cold jpki revocation check, fresh {entries:,}-entry CRL",
        min(ours),
        "openssl crl -inform DER -noout",
        min(base),
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=None)
    a = ap.parse_args()
    repeat = a.repeat or (3 if a.quick else 7)
    rows = [bench_version(repeat * 3), bench_cold_check(a.entries, repeat)]
    # Without cached bytecode every run compiles jpki's modules first (~40 ms here): an
    # installed package has its .pyc files, a checkout run with PYTHONDONTWRITEBYTECODE not.
    cached = not sys.flags.dont_write_bytecode or any(SRC.glob("jpki/__pycache__/*.pyc"))
    note = None if cached else "no cached bytecode (PYTHONDONTWRITEBYTECODE): compiling included"
    if a.json:
        print(json.dumps({"rows": rows, "bytecode_cached": cached}))
    else:
        for r in rows:
            print(
                f"{r['name']}: {r['value']:.3f} s vs {r['reference']} "
                f"{r['reference_value']:.3f} s = {r['ratio']:.2f}x"
            )
        if note:
            print(f"note: {note}")


if __name__ == "__main__":
    main()
