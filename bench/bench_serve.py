"""`jpki serve` under load: throughput and latency against the in-process verification rate.

Measured in the same run:

* service    : an asyncio client (httpx, ``--concurrency`` connections, default 64) sends
               ``--requests`` (default 10^4) ``POST /v1/signatures`` (raw signature over data by
               a test signing certificate, chain + CRL + audit record) to a ``jpki serve`` on
               127.0.0.1 (SQLite in a temp dir, ``--workers`` processes); throughput and
               p50 / p99 latency of the answered requests.
* in process : the very job the workers run (``jpki.service.jobs.run_job``: signature, chain,
               CRL) in a loop in this process, one core; the ratio service / in-process says
               what the HTTP layer, the pool and the audit record cost (and what ``--workers``
               buys back).

Client and server share this machine's cores, so the service figure is a lower bound.

Usage: ``python bench/bench_serve.py [--quick] [--json] [--requests N] [--concurrency N]
[--workers N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from jpki.service.audit import b64
from jpki.service.jobs import run_job
from jpki.testing.pki import TestPki

REPO = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(tmp: Path) -> dict[str, Any]:
    pki = TestPki()
    now = datetime.now(UTC)
    signer = pki.issue_signing(label="bench-signer")
    (tmp / "auth-ca.der").write_bytes(pki.auth_ca.der)
    (tmp / "sign-ca.der").write_bytes(pki.sign_ca.der)
    crls = tmp / "crls"
    crls.mkdir()
    crl = pki.make_crl("sign", this_update=now - timedelta(hours=1), number=1)
    (crls / "sign.crl").write_bytes(crl)
    data = b"bench contract"
    sig = signer.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    body = {"certificate": b64(signer.der), "signature": b64(sig), "data": b64(data)}
    return {
        "pki": pki,
        "crl": crl,
        "body": body,
        "trust": [tmp / "auth-ca.der", tmp / "sign-ca.der"],
    }


def in_process_rate(setup: dict[str, Any], n: int) -> float:
    """Jobs/s of the workers' own job function, one core."""
    import hashlib

    pki: TestPki = setup["pki"]
    crl = setup["crl"]
    sha = hashlib.sha256(crl).hexdigest()
    job = {
        "kind": "signature",
        "certificate": setup["body"]["certificate"],
        "signature": setup["body"]["signature"],
        "data": setup["body"]["data"],
        "digest": None,
        "hash": "sha256",
        "purpose": "sign",
        "time": datetime.now(UTC).isoformat(),
        "crls": [sha],
        "soft_fail": False,
    }
    anchors = [pki.auth_ca.der, pki.sign_ca.der]
    out = run_job(job, anchors, {sha: crl})
    assert out["result"]["status"] == "valid", out
    t0 = time.perf_counter()
    for _ in range(n):
        run_job(job, anchors, {sha: crl})
    return n / (time.perf_counter() - t0)


async def _client(base: str, key: str, body: dict[str, Any], n: int, conc: int) -> dict[str, Any]:
    lat: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120.0) as client:
        h = {"X-API-Key": key}
        todo = iter(range(n))

        async def worker() -> None:
            nonlocal errors
            for _ in todo:
                t = time.perf_counter()
                try:
                    r = await client.post("/v1/signatures", headers=h, json=body)
                except httpx.HTTPError:
                    errors += 1
                    continue
                if r.status_code == 200 and r.json().get("status") == "valid":
                    lat.append(time.perf_counter() - t)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        wall = time.perf_counter() - t0
    lat.sort()
    return {
        "requests": n,
        "ok": len(lat),
        "errors": errors,
        "seconds": wall,
        "rps": len(lat) / wall,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="1000 requests (smoke run)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = 1000 if args.quick else args.requests
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        setup = _setup(tmp)
        db = str(tmp / "service.sqlite")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
        cli = [sys.executable, "-c", "from jpki.cli import main; main()"]
        key = subprocess.run(
            [*cli, "serve", "keys", "add", "--db", db, "--rate", "10000000", "bench"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        port = _port()
        proc = subprocess.Popen(
            [*cli, "serve", "--db", db, "--port", str(port), "--workers", str(args.workers),
             "--crl-dir", str(tmp / "crls"), *(f"--trust={t}" for t in setup["trust"])],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                raise SystemExit("the service did not become ready")
            asyncio.run(_client(base, key, setup["body"], min(200, n), args.concurrency))  # warm
            service = asyncio.run(_client(base, key, setup["body"], n, args.concurrency))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        ref = in_process_rate(setup, min(n, 2000))
    out = {
        **service,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "in_process_per_s": ref,
        "ratio": service["rps"] / ref,
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"POST /v1/signatures x{n}, {args.concurrency} connections, {args.workers} workers")
    print(f"  service     {service['rps']:8.1f} req/s  p50 {service['p50_ms']:.1f} ms  "
          f"p99 {service['p99_ms']:.1f} ms  ({service['errors']} errors)")  # fmt: skip
    print(f"  in process  {ref:8.1f} verifications/s (same job, one core)")
    print(f"  ratio       {out['ratio']:.2f} (service / in-process)")


if __name__ == "__main__":
    main()
