"""`jpki serve` under load: throughput and latency against the in-process verification rate.

Measured in the same run:

* service    : an asyncio client (``--concurrency`` keep-alive connections, default 64, one
               per worker coroutine, hand-written HTTP/1.1 on asyncio streams) sends
               ``--requests`` (default 10^4) ``POST /v1/signatures`` (raw signature over data by
               a test signing certificate, chain + CRL + audit record) to a ``jpki serve`` on
               127.0.0.1 (SQLite in a temp dir, ``--workers`` processes); throughput and
               p50 / p99 latency of the valid answers; every other outcome counted by kind
               (exception and new/reused connection, or HTTP status), with the service's own
               warnings and errors from its log and its own latency histogram (/metrics).
* /healthz   : a probe thread GETs /healthz every 50 ms on its own connection: on the idle
               service (the machine's own latency), during the main run, and with the pool
               saturated by two connections per worker (little HTTP work for the loop).
* in process : the very job the workers run (``jpki.service.jobs.service_run``: signature,
               chain, CRL, the record's certificate summary) in a loop in this process, one
               core; the ratio service / in-process says what the HTTP layer, the pool and
               the audit record cost (and what ``--workers`` buys back).

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
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from jpki.service.audit import b64
from jpki.service.jobs import service_run
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


def in_process_rate(setup: dict[str, Any], db: str, n: int) -> float:
    """Jobs/s of the workers' own job function on the job the service recorded, one core.

    The job is taken from the service's last audit record and run against the service's own
    revocation store (its database), as a pool worker runs it.
    """
    from jpki.revocation.store import RevocationStore
    from jpki.service.db import Database

    pki: TestPki = setup["pki"]
    d = Database(db)
    try:
        (body,) = d.query("SELECT body FROM svc_audit ORDER BY seq DESC LIMIT 1")[0]
    finally:
        d.close()
    job = json.loads(body)["job"]
    anchors = [pki.auth_ca.der, pki.sign_ca.der]
    with RevocationStore(db) as store:
        out = service_run(job, anchors, store)
        assert out["result"]["status"] == "valid", out
        t0 = time.perf_counter()
        for _ in range(n):
            service_run(job, anchors, store)
        return n / (time.perf_counter() - t0)


#: uvicorn closes a keep-alive connection idle for 5 s (its ``timeout_keep_alive``). A client
#: whose pool keeps idle connections as long (httpx's default ``keepalive_expiry`` is 5 s
#: too) now and then sends on a connection the server is closing at that instant: the
#: kernel answers RST and the request fails with ``ReadError`` before reaching the app (the
#: earlier runs' "transport errors"). This client gives each of its workers one connection
#: that is never idle; a proxy in front of the service must expire idle upstream connections
#: before the service does (docs/service.md).
SERVER_KEEPALIVE = 5.0


class _Conn:
    """One HTTP/1.1 keep-alive connection of the load client (asyncio streams).

    A small hand-written client: httpx spends more CPU per request than the service's event
    loop does, and on a shared 2-core machine the client, not the service, set the pace.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.opened = 0

    async def request(self, raw: bytes, timeout: float) -> tuple[int, bytes, bool]:
        """Send ``raw``; (status, body, whether the connection was reused)."""
        reused = self.writer is not None
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.opened += 1
        assert self.reader is not None
        try:
            self.writer.write(raw)
            async with asyncio.timeout(timeout):
                head = await self.reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                length = 0
                close = False
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    elif name.lower() == "connection" and "close" in value.lower():
                        close = True
                body = await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, body, reused

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _request_bytes(host: str, port: int, key: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST /v1/signatures HTTP/1.1\r\nHost: {host}:{port}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _client(
    host: str, port: int, key: str, body: dict[str, Any], n: int, conc: int
) -> dict[str, Any]:
    """``n`` requests over ``conc`` connections: latencies of valid answers, failures by kind."""
    raw = _request_bytes(host, port, key, body)
    lat: list[float] = []
    kinds: dict[str, int] = {}
    conns = [_Conn(host, port) for _ in range(conc)]
    todo = iter(range(n))

    def count(kind: str) -> None:
        kinds[kind] = kinds.get(kind, 0) + 1

    async def worker(conn: _Conn) -> None:
        for _ in todo:
            t = time.perf_counter()
            reused = conn.writer is not None
            try:
                status, answer, reused = await conn.request(raw, 120.0)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                where = "a reused" if reused else "a new"
                count(f"{type(exc).__name__} on {where} connection")
                continue
            if status == 200 and b'"status":"valid"' in answer:
                lat.append(time.perf_counter() - t)
            else:
                count(f"HTTP {status} {answer[:80]!r}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    wall = time.perf_counter() - t0
    for c in conns:
        c.close()
    lat.sort()
    return {
        "requests": n,
        "ok": len(lat),
        "errors": n - len(lat),
        "error_kinds": kinds,
        "connections_opened": sum(c.opened for c in conns),
        "seconds": wall,
        "rps": len(lat) / wall,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * _pct(lat, 0.99),
    }


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


class _HealthProbe(threading.Thread):
    """GET /healthz every 50 ms on its own connection while the load runs."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.lat: list[float] = []
        self.failed = 0
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30.0) as c:
            while not self.halt.wait(0.05):
                t = time.perf_counter()
                try:
                    ok = c.get("/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.lat.append(time.perf_counter() - t)
                else:
                    self.failed += 1

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.lat)
        return {
            "healthz_probes": len(lat),
            "healthz_failed": self.failed,
            "healthz_p50_ms": 1000 * statistics.median(lat) if lat else None,
            "healthz_p99_ms": 1000 * _pct(lat, 0.99) if lat else None,
            "healthz_max_ms": 1000 * lat[-1] if lat else None,
            "healthz_over_50ms": sum(1 for x in lat if x > 0.05),
        }


def _server_quantiles(base: str, route: str = "/v1/signatures") -> dict[str, str]:
    """p50/p99 of the service's own request timing (its /metrics histogram: bucket bounds)."""
    text = httpx.get(base + "/metrics", timeout=30).text
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith("jpki_request_duration_seconds_bucket{") and f'"{route}"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    if not buckets or buckets[-1][1] == 0:
        return {}
    total = buckets[-1][1]

    def q(frac: float) -> str:
        for le, count in buckets:
            if count >= frac * total:
                return f"<= {le:g} s" if le != float("inf") else "> last bucket"
        return "?"

    return {"server_p50": q(0.5), "server_p99": q(0.99)}


def _server_log_kinds(log: Path) -> dict[str, int]:
    """Warning and error lines of the service's log, counted by message."""
    kinds: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(("WARNING", "ERROR", "CRITICAL", "Traceback")):
            kinds[line[:120]] = kinds.get(line[:120], 0) + 1
    return kinds


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
        log = tmp / "serve.log"
        with log.open("wb") as out_log:
            proc = subprocess.Popen(
                [*cli, "serve", "--db", db, "--port", str(port), "--workers", str(args.workers),
                 "--crl-dir", str(tmp / "crls"), *(f"--trust={t}" for t in setup["trust"])],
                env=env, stdout=out_log, stderr=out_log, start_new_session=True,
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
            body, conc, host = setup["body"], args.concurrency, "127.0.0.1"
            asyncio.run(_client(host, port, key, body, min(200, n), conc))  # warm-up
            # /healthz on the idle service first: the reference for the machine's own load.
            idle = _HealthProbe(base)
            idle.start()
            time.sleep(3.0)
            idle.halt.set()
            idle.join()
            probe = _HealthProbe(base)
            probe.start()
            service = asyncio.run(_client(host, port, key, body, n, conc))
            probe.halt.set()
            probe.join()
            service.update(_server_quantiles(base))
            # The pool saturated by few connections (two per worker: one running, one queued):
            # the event loop has little HTTP work, so /healthz shows the pool's effect alone.
            few = _HealthProbe(base)
            few.start()
            asyncio.run(_client(host, port, key, body, min(n, 1000), 2 * args.workers))
            few.halt.set()
            few.join()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        server_log = _server_log_kinds(log)
        ref = in_process_rate(setup, db, min(n, 2000))
    health = probe.summary()
    health_idle = {f"idle_{k}": v for k, v in idle.summary().items()}
    health_few = {f"few_{k}": v for k, v in few.summary().items()}
    out = {
        **service,
        **health,
        **health_idle,
        **health_few,
        "server_log": server_log,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "in_process_per_s": ref,
        "ratio": service["rps"] / ref,
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"POST /v1/signatures x{n}, {args.concurrency} connections "
          f"({service['connections_opened']} opened), {args.workers} workers")  # fmt: skip
    print(f"  service     {service['rps']:8.1f} req/s  p50 {service['p50_ms']:.1f} ms  "
          f"p99 {service['p99_ms']:.1f} ms  ({service['errors']} errors)")  # fmt: skip
    if "server_p50" in service:
        print(f"  in service  p50 {service['server_p50']}  p99 {service['server_p99']} "
              "(its /metrics histogram, warm-up included)")  # fmt: skip
    for kind, count in sorted(service["error_kinds"].items(), key=lambda kv: -kv[1]):
        print(f"    {count:6d}  {kind}")
    for line, count in server_log.items():
        print(f"    server log {count:6d}x  {line}")
    if health["healthz_probes"]:
        print(f"  /healthz    p50 {health['healthz_p50_ms']:.1f} ms  p99 "
              f"{health['healthz_p99_ms']:.1f} ms  max {health['healthz_max_ms']:.1f} ms  "
              f"({health['healthz_over_50ms']} of {health['healthz_probes']} over 50 ms, "
              f"{health['healthz_failed']} failed) at {args.concurrency} connections")  # fmt: skip
    if health_few["few_healthz_probes"]:
        print(f"  /healthz    p50 {health_few['few_healthz_p50_ms']:.1f} ms  p99 "
              f"{health_few['few_healthz_p99_ms']:.1f} ms  ({health_few['few_healthz_over_50ms']} "
              f"of {health_few['few_healthz_probes']} over 50 ms) with the pool saturated by "
              f"{2 * args.workers} connections")  # fmt: skip
    if health_idle["idle_healthz_probes"]:
        print(f"  /healthz    p50 {health_idle['idle_healthz_p50_ms']:.1f} ms  p99 "
              f"{health_idle['idle_healthz_p99_ms']:.1f} ms on the idle service (same machine "
              f"load, reference)")  # fmt: skip
    print(f"  in process  {ref:8.1f} verifications/s (same job, one core)")
    print(f"  ratio       {out['ratio']:.2f} (service / in-process)")
    print(f"  load average {' '.join(f'{x:.1f}' for x in out['load_average'])} "
          f"(machine shared: figures are lower bounds)")  # fmt: skip


if __name__ == "__main__":
    main()
