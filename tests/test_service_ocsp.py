"""`jpki serve` asking a real `openssl ocsp` responder when no CRL answers; evidence replayed."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from jpki.cli import main
from jpki.service.app import ServiceConfig
from jpki.testing.pki import Issued
from ocsp_helpers import free_port, key_pem, openssl_responder, write_index
from service_helpers import Pki, add_key, b64, login_body, make_pki, thread_service

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass
class Env:
    pki: Pki
    tmp: Path
    port: int
    good: Issued
    revoked: Issued

    def config(self, name: str, **kw: Any) -> ServiceConfig:
        return ServiceConfig(
            db_url=str(self.tmp / f"{name}.sqlite"),
            anchors=self.pki.anchors(),
            workers=1,
            key_cache_seconds=0.0,
            ocsp_timeout=3.0,
            **kw,
        )

    @contextlib.contextmanager
    def responder(self) -> Iterator[str]:
        d = self.tmp / "ocsp"
        with openssl_responder(
            d / "index.txt", d / "ca.pem", d / "resp.pem", d / "resp.key", port=self.port
        ) as url:
            yield url


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    tmp = tmp_path_factory.mktemp("svc-ocsp")
    pki = make_pki(tmp / "pki")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    # The responder is named in the certificates' OCSP AIA; no CRL is loaded at all.
    good = pki.pki.issue_auth(label="ocsp-good", ocsp_url=url)
    revoked = pki.pki.issue_auth(label="ocsp-revoked", ocsp_url=url)
    d = tmp / "ocsp"
    d.mkdir()
    (d / "ca.pem").write_bytes(pki.pki.auth_ca.pem)
    resp = pki.pki.issue_ocsp_responder("auth")
    (d / "resp.pem").write_bytes(resp.pem)
    (d / "resp.key").write_bytes(key_pem(resp.key))
    write_index(
        d / "index.txt", good=[good.cert.serial_number], revoked=[revoked.cert.serial_number]
    )
    return Env(pki, tmp, port, good, revoked)


def _login(base: str, h: dict[str, str], who: Issued) -> dict[str, Any]:
    ch = httpx.post(base + "/v1/challenges", headers=h).json()
    r = httpx.post(base + "/v1/logins", headers=h, json=login_body(who, ch), timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_ocsp_from_the_aia_answers_and_is_recorded(env: Env) -> None:
    config = env.config("aia")
    with env.responder(), thread_service(config) as (base, _app):
        h = {"X-API-Key": add_key(config.db_url)}
        ok = _login(base, h, env.good)
        assert ok["status"] == "valid", ok
        assert [a["status"] for a in ok["revocation"]] == ["good"]
        assert ok["revocation"][0]["source"].startswith("ocsp:http://127.0.0.1:")
        bad = _login(base, h, env.revoked)
        assert bad["status"] == "invalid"
        assert bad["revocation"][0]["status"] == "revoked"
        assert bad["revocation"][0]["reason"] == "affiliationChanged"
        st = httpx.post(
            base + "/v1/status-checks",
            headers=h,
            json={"certificates": [b64(env.good.der), b64(env.revoked.der)]},
            timeout=30,
        ).json()
        assert [i["status"] for i in st["items"]] == ["good", "revoked"]
    # The responder is gone: the record's OCSP responses are re-checked offline.
    with sqlite3.connect(config.db_url) as c:
        bodies = [json.loads(r[0]) for r in c.execute("SELECT body FROM svc_audit ORDER BY seq")]
    logins = [b for b in bodies if b["kind"] == "login" and b["job"]["nonce"]]
    assert logins and all(b["evidence"]["ocsp"][0]["response"] for b in logins)
    assert all(b["evidence"]["crls"] == [] for b in logins)
    res = CliRunner().invoke(main, ["audit", "verify", "--db", config.db_url])
    assert res.exit_code == 0, res.output
    # A record whose OCSP response was swapped for the other certificate's fails the re-check.
    copy = env.tmp / "swapped.sqlite"
    with sqlite3.connect(config.db_url) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    _swap_ocsp_response(copy)
    res = CliRunner().invoke(main, ["audit", "verify", "--db", str(copy)])
    assert res.exit_code == 1 and "record 1:" in res.output, res.output


def _swap_ocsp_response(db: Path) -> None:
    from jpki.service.audit import canonical, record_hash
    from test_service_api import _rechain

    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT seq, body FROM svc_audit ORDER BY seq").fetchall()
        recs = {int(s): json.loads(b) for s, b in rows}
        first, second = recs[1], recs[2]  # the good login, the revoked one
        first["evidence"]["ocsp"][0]["response"] = second["evidence"]["ocsp"][0]["response"]
        c.execute(
            "UPDATE svc_audit SET body=?, hash=? WHERE seq=1",
            (canonical(first).decode(), record_hash(first)),
        )
        _rechain(c, 1)


def test_responder_down_hard_fail_and_soft_fail(env: Env) -> None:
    # No responder listening on the AIA's port: nothing establishes the status.
    hard = env.config("hard")
    with thread_service(hard) as (base, _app):
        h = {"X-API-Key": add_key(hard.db_url)}
        out = _login(base, h, env.good)
        assert out["status"] == "indeterminate", out
        assert out["revocation"][0]["status"] == "unknown"
        assert not out["revocation"][0]["accepted"]
        assert httpx.get(base + "/readyz").status_code == 503
    soft = env.config("soft", soft_fail=True)
    with thread_service(soft) as (base, _app):
        h = {"X-API-Key": add_key(soft.db_url)}
        out = _login(base, h, env.good)
        # Accepted by soft-fail, and said so: unknown, never good.
        assert out["status"] == "valid", out
        rev = out["revocation"][0]
        assert rev["status"] == "unknown" and rev["soft_failed"] and rev["accepted"]
    for cfg in (hard, soft):
        res = CliRunner().invoke(main, ["audit", "verify", "--db", cfg.db_url])
        assert res.exit_code == 0, res.output


def test_configured_responder_overrides_the_aia(env: Env) -> None:
    # A certificate whose AIA names an unreachable host; --ocsp names the real responder.
    other = env.pki.pki.issue_auth(label="ocsp-elsewhere")
    d = env.tmp / "ocsp"
    (d / "index.txt.attr").write_text("unique_subject = no\n")  # write_index's one subject
    write_index(
        d / "index.txt",
        good=[env.good.cert.serial_number, other.cert.serial_number],
        revoked=[env.revoked.cert.serial_number],
    )
    url = f"http://127.0.0.1:{env.port}/"
    config = env.config("configured", ocsp_url=url)
    with env.responder(), thread_service(config) as (base, _app):
        h = {"X-API-Key": add_key(config.db_url)}
        out = _login(base, h, other)
        assert out["status"] == "valid", out
        assert out["revocation"][0]["source"] == f"ocsp:{url}"
        info = httpx.get(base + "/v1/revocation", headers=h).json()
        assert info["ocsp"]["url"] == url and info["crls"] == []
        assert httpx.get(base + "/readyz").status_code == 200


def test_status_check_asks_ocsp_concurrently_answers_in_order(env: Env) -> None:
    config = env.config("many")
    with env.responder(), thread_service(config) as (base, _app):
        h = {"X-API-Key": add_key(config.db_url)}
        # A repeated certificate gets its own exchange (each answer has its own evidence).
        order = [env.good, env.revoked, env.good, env.good, env.revoked, env.good]
        st = httpx.post(
            base + "/v1/status-checks",
            headers=h,
            json={"certificates": [b64(c.der) for c in order]},
            timeout=60,
        ).json()
        want = ["good" if c is env.good else "revoked" for c in order]
        assert [i["status"] for i in st["items"]] == want, st
        assert [int(i["serial"], 16) for i in st["items"]] == [c.cert.serial_number for c in order]
    with sqlite3.connect(config.db_url) as c:
        (body,) = c.execute("SELECT body FROM svc_audit ORDER BY seq DESC LIMIT 1").fetchone()
    ocsp = json.loads(body)["evidence"]["ocsp"]
    assert [int(o["serial"], 16) for o in ocsp] == [c.cert.serial_number for c in order]
    assert all(o["response"] for o in ocsp)
    res = CliRunner().invoke(main, ["audit", "verify", "--db", config.db_url])
    assert res.exit_code == 0, res.output


@pytest.mark.timeout(30)
def test_status_check_against_a_silent_responder_returns_within_one_deadline(env: Env) -> None:
    # A responder that accepts connections (the kernel's backlog) and never answers. Asked
    # one after another, 12 certificates would take 12 x 3 s, beyond the test's timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        config = env.config("silent", ocsp_url=url)
        with thread_service(config) as (base, _app):
            h = {"X-API-Key": add_key(config.db_url)}
            r = httpx.post(
                base + "/v1/status-checks",
                headers=h,
                json={"certificates": [b64(env.good.der)] * 12},
                timeout=60,
            )
        assert r.status_code == 200, r.text
        st = r.json()
        assert st["status"] == "indeterminate"
        assert [i["status"] for i in st["items"]] == ["unknown"] * 12
    res = CliRunner().invoke(main, ["audit", "verify", "--db", config.db_url])
    assert res.exit_code == 0, res.output
