"""Simulator throughput: full in-process JPKI sessions per second vs raw RSA signing.

A session is what a login does with a card: reset, SELECT the JPKI AP, read the auth
certificate (DER-sized chunked READ BINARY), read the auth PIN counter (empty VERIFY), VERIFY
the PIN (the simulator persists the counter atomically before and after comparing), SELECT the
key and COMPUTE DIGITAL SIGNATURE over a SHA-256 DigestInfo — all through ``JpkiAp`` over
``SimulatedConnection``. One RSA-2048 signature dominates it, so the reference, measured in the
same run, is ``cryptography``'s PKCS#1 v1.5 sign rate with the same key.

Usage: ``python bench/bench_sim.py [--quick] [--json] [--seconds N]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from jpki.card import CertSlot, JpkiAp, KeyKind
from jpki.secret import Secret
from jpki.sim import SimulatedCard
from jpki.sim.create import create_profile
from jpki.transport.simulated import SimulatedConnection

PIN = Secret("1234")


def rate(fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(calls per wall-clock second, calls per CPU second) of ``fn`` over ``seconds`` of wall
    clock, after a warm-up call."""
    fn()
    n = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while True:
        fn()
        n += 1
        spent = time.perf_counter() - wall
        if spent >= seconds:
            return n / spent, n / max(time.process_time() - cpu, 1e-9)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run (CI smoke)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument("--seconds", type=float, default=None, help="CPU seconds per figure")
    args = ap.parse_args(argv)
    seconds = args.seconds or (0.5 if args.quick else 3.0)

    with tempfile.TemporaryDirectory(prefix="jpki-bench-sim-") as tmp:
        profile = Path(tmp) / "card"
        create_profile(profile)
        card = SimulatedCard(profile)
        conn = SimulatedConnection(card)
        digest = b"\x5a" * 32
        key = card.profile.private_key("auth")

        digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + digest

        def session() -> None:
            conn.reset()
            jpki = JpkiAp(conn)
            jpki.read_certificate(CertSlot.AUTH)
            jpki.pin_status(KeyKind.AUTH)
            jpki.verify_pin(KeyKind.AUTH, PIN)
            jpki.sign(KeyKind.AUTH, digest_info)

        def session_no_pin() -> None:
            # Same without VERIFY and sign: protocol + file-system cost, no RSA, no disk writes.
            conn.reset()
            jpki = JpkiAp(conn)
            jpki.read_certificate(CertSlot.AUTH)
            jpki.pin_status(KeyKind.AUTH)

        def raw_sign() -> None:
            key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

        r: dict[str, Any] = {"seconds": seconds}
        r["rsa_sign_per_s"], r["rsa_sign_per_cpu_s"] = rate(raw_sign, seconds)
        r["sessions_per_s"], r["sessions_per_cpu_s"] = rate(session, seconds)
        r["sessions_no_pin_per_s"], _ = rate(session_no_pin, seconds)
        conn.close()
    # Wall clock: a session's VERIFY persists the spent try durably (fsync) before comparing
    # (the reset after a good PIN is atomic but not fsync'd), which is I/O wait, not CPU;
    # the CPU-time ratio shows the protocol and model overhead alone.
    r["ratio_sessions_vs_rsa_sign"] = r["sessions_per_s"] / r["rsa_sign_per_s"]
    r["ratio_sessions_vs_rsa_sign_cpu"] = r["sessions_per_cpu_s"] / r["rsa_sign_per_cpu_s"]
    r["rows"] = [
        {
            "name": "simulator: full JPKI sessions/s (in-process, wall clock)",
            "value": r["sessions_per_s"],
            "unit": "sessions/s",
            "reference": "cryptography RSA-2048 PKCS#1 v1.5 sign/s, same key",
            "reference_value": r["rsa_sign_per_s"],
            "reference_unit": "signs/s",
            "ratio": r["ratio_sessions_vs_rsa_sign"],
        },
        {
            "name": "simulator: full JPKI sessions per CPU second",
            "value": r["sessions_per_cpu_s"],
            "unit": "sessions/CPU s",
            "reference": "cryptography RSA-2048 sign per CPU second, same key",
            "reference_value": r["rsa_sign_per_cpu_s"],
            "reference_unit": "signs/CPU s",
            "ratio": r["ratio_sessions_vs_rsa_sign_cpu"],
        },
    ]
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{seconds:g} s wall clock per figure")
    print(f"raw RSA-2048 sign (cryptography): {r['rsa_sign_per_s']:10.1f} /s")
    print(f"full JPKI session (simulator):    {r['sessions_per_s']:10.1f} /s")
    print(f"  per CPU second:                 {r['sessions_per_cpu_s']:10.1f} /s")
    print(f"session without PIN and sign:     {r['sessions_no_pin_per_s']:10.1f} /s")
    print(f"ratio sessions / raw signs:       {r['ratio_sessions_vs_rsa_sign']:10.3f} (wall)")
    print(f"                                  {r['ratio_sessions_vs_rsa_sign_cpu']:10.3f} (CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
