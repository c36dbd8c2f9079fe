"""A fleet: `jpki serve` processes sharing one PostgreSQL; kill -9 during load."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from click.testing import CliRunner

from jpki.cli import main
from jpki.service.db import Database
from service_helpers import (
    HTTP,
    Pki,
    add_key,
    b64,
    login_body,
    make_pki,
    pool_workers,
    spawn_service,
    stop,
    wait_ready,
)

if TYPE_CHECKING:
    from pg_helpers import PgServer

# PostgreSQL: the session's server (``pg_server`` in conftest.py; skips without PostgreSQL).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("fleet-pki"))


@dataclass
class Fleet:
    db: str
    key: str
    crl_dir: Path
    log: Path
    members: list[tuple[str, subprocess.Popen[bytes]]]  # A (feeds CRLs), B

    @property
    def h(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    @property
    def args_a(self) -> list[str]:
        return ["--workers=2", f"--crl-dir={self.crl_dir}", "--crl-poll=0.1"]


@pytest.fixture(scope="module")
def fleet(
    pg_server: PgServer, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """Two instances on one database; A watches the CRL directory, B has none."""
    tmp = tmp_path_factory.mktemp("fleet")
    db = pg_server.create_db("fleet")
    crl_dir = tmp / "crls"
    crl_dir.mkdir()
    (crl_dir / "auth.crl").write_bytes(pki.crl("auth", 1))
    f = Fleet(db, add_key(db), crl_dir, tmp / "log", [])
    f.members = [
        spawn_service(db, pki.trust, *f.args_a, log=f.log),
        spawn_service(db, pki.trust, "--workers=2", log=f.log),
    ]
    try:
        for base, proc in f.members:
            wait_ready(base, lambda p=proc: p.poll() is None)  # type: ignore[misc]
        yield f
    finally:
        for _base, proc in f.members:
            stop(proc)


def _wait_for(fn: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_two_instances_share_challenges_and_crls(fleet: Fleet, pki: Pki, tmp_path: Path) -> None:
    user = pki.pki.issue_auth(label="fleet-user")
    (a, _pa), (b, _pb) = fleet.members
    crl_dir, db, h = fleet.crl_dir, fleet.db, fleet.h
    # The CRL loaded through A's directory at A's start is B's too.
    info = HTTP.get(b + "/v1/revocation", headers=h).json()
    assert [c["number"] for c in info["crls"]] == [1]
    time.sleep(1.1)  # B's cached view of the current CRLs is at most a second old
    # Issued at A, used at B: valid once; the same challenge at A afterwards: refused.
    ch = HTTP.post(a + "/v1/challenges", headers=h).json()
    first = HTTP.post(b + "/v1/logins", headers=h, json=login_body(user, ch)).json()
    assert first.get("status") == "valid", first
    second = HTTP.post(a + "/v1/logins", headers=h, json=login_body(user, ch)).json()
    assert second["status"] == "invalid" and "already used" in " ".join(second["reasons"])
    # Races: each challenge posted to both instances at once wins exactly once.
    chs = [HTTP.post(a + "/v1/challenges", headers=h).json() for _ in range(8)]
    with ThreadPoolExecutor(16) as ex:
        futs = [
            ex.submit(HTTP.post, url + "/v1/logins", headers=h, json=login_body(user, c))
            for c in chs
            for url in (a, b)
        ]
        answers = [f.result().json() for f in futs]
    for i in range(len(chs)):
        pair = [answers[2 * i]["status"], answers[2 * i + 1]["status"]]
        assert sorted(pair) == ["invalid", "valid"], pair
    # A replacement dropped into A's directory reaches B.
    (crl_dir / "auth.crl").write_bytes(pki.crl("auth", 2, (user.cert.serial_number,)))

    def revoked_at_b() -> bool:
        out = HTTP.post(
            b + "/v1/status-checks", headers=h, json={"certificates": [b64(user.der)]}
        ).json()
        return bool(out["items"][0]["status"] == "revoked")

    _wait_for(revoked_at_b, "B to see the CRL loaded through A")
    # `jpki revocation sync` (a cron job) feeds the same database.
    sync_dir = tmp_path / "sync"
    sync_dir.mkdir()
    (sync_dir / "auth.crl").write_bytes(pki.crl("auth", 3))
    res = CliRunner().invoke(
        main,
        [
            "revocation",
            "sync",
            "--db",
            db,
            "--crl-dir",
            str(sync_dir),
            "--json",
            *(f"--trust={t}" for t in pki.trust),
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)[0]["loaded"] is True

    def sees_3(url: str) -> bool:
        info = HTTP.get(url + "/v1/revocation", headers=h).json()
        return [c["number"] for c in info["crls"]] == [3]

    _wait_for(lambda: sees_3(a) and sees_3(b), "both instances to see CRL #3")
    res = CliRunner().invoke(main, ["audit", "verify", "--db", db])
    assert res.exit_code == 0, res.output


async def _load(
    urls: list[str], key: str, user: Any, n: int, conc: int, answers: list[dict[str, Any]]
) -> None:
    """``n`` logins (each challenge posted twice: the replay must fail), ``conc`` at once."""
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        sem = asyncio.Semaphore(conc)
        h = {"X-API-Key": key}

        async def one(i: int) -> None:
            url = urls[i % len(urls)]
            async with sem:
                try:
                    ch = (await client.post(url + "/v1/challenges", headers=h)).json()
                    body = login_body(user, ch)
                    for _ in range(2):
                        r = await client.post(url + "/v1/logins", headers=h, json=body)
                        if r.status_code == 200:
                            answers.append({"challenge": ch["id"], **r.json()})
                except (httpx.HTTPError, ValueError, KeyError):
                    pass  # the instance was killed under us: no answer, nothing to check

        await asyncio.gather(*(one(i) for i in range(n)))


def test_kill_9_during_load_loses_nothing(fleet: Fleet, pki: Pki) -> None:
    user = pki.pki.issue_auth(label="crash-user")
    db, key, log = fleet.db, fleet.key, fleet.log
    answers: list[dict[str, Any]] = []
    (base, proc), (other, _proc2) = fleet.members
    victims = pool_workers(proc.pid)
    assert len(victims) == 2, victims

    async def scenario() -> None:
        load = asyncio.create_task(_load([base, other], key, user, 120, 64, answers))
        while len(answers) < 30 and not load.done():
            await asyncio.sleep(0.05)
        os.kill(victims[0], signal.SIGKILL)  # one worker of the pool
        while len(answers) < 90 and not load.done():
            await asyncio.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole first instance
        await load

    asyncio.run(scenario())
    assert proc.wait(10) == -signal.SIGKILL
    # The second instance carried on; a restarted first one opens the same database.
    stop(proc)
    base, proc = fleet.members[0] = spawn_service(db, pki.trust, *fleet.args_a, log=log)
    wait_ready(base, lambda: proc.poll() is None)
    asyncio.run(_load([base], key, user, 10, 8, answers))
    assert len(answers) > 100
    d = Database(db)
    try:
        rows = d.query("SELECT seq, hash, body FROM svc_audit ORDER BY seq")
    finally:
        d.close()
    by_seq = {int(r[0]): (r[1], json.loads(r[2])) for r in rows}
    # Every answer has its record, with the same hash and challenge.
    for ans in answers:
        h, rec = by_seq[ans["record"]["seq"]]
        assert h == ans["record"]["hash"]
        assert rec["job"]["challenge_id"] == ans["challenge"]
        assert rec["verdict"]["status"] == ans["status"]
    # No challenge was usable twice, answered or not.
    valid: dict[str, int] = {}
    for _h, rec in by_seq.values():
        if rec["kind"] == "login" and rec["verdict"]["status"] == "valid":
            cid = rec["job"]["challenge_id"]
            valid[cid] = valid.get(cid, 0) + 1
    assert valid and max(valid.values()) == 1
    assert any(a["status"] == "valid" for a in answers)
    assert all(
        a["status"] == "valid" or "already used" in " ".join(a["reasons"]) for a in answers
    ), "a login failed for another reason than a replay"
    assert "worker died" in log.read_text()
    res = CliRunner().invoke(main, ["audit", "verify", "--db", db])
    assert res.exit_code == 0, res.output
