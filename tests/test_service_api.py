"""`jpki serve` API against a real uvicorn server (in a thread) on an SQLite database."""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jpki.cli import main
from jpki.service.app import ServiceConfig
from jpki.testing.pki import Issued
from jpki.verify import account_key
from service_helpers import (
    HTTP,
    Pki,
    add_key,
    b64,
    login_body,
    make_pki,
    raw_db_bytes,
    thread_service,
)

# pyHanko registers its CMS attribute names with asn1crypto on import; imported late (after
# asn1crypto has built its reverse OID map) its signer cannot name signing_certificate_v2.
pyhanko_signers = pytest.importorskip("pyhanko.sign.signers")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass
class Svc:
    base: str
    app: Any
    db: str
    key: str
    pki: Pki
    crl_dir: Path
    user: Issued
    revoked: Issued
    signer: Issued

    @property
    def h(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    def records(self) -> int:
        with sqlite3.connect(self.db) as c:
            return int(c.execute("SELECT COUNT(*) FROM svc_audit").fetchone()[0])

    def challenge(self) -> dict[str, Any]:
        r = HTTP.post(self.base + "/v1/challenges", headers=self.h)
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Svc]:
    tmp = tmp_path_factory.mktemp("svc")
    pki = make_pki(tmp / "pki")
    user = pki.pki.issue_auth(label="svc-user")
    revoked = pki.pki.issue_auth(label="svc-revoked")
    signer = pki.pki.issue_signing(label="svc-signer")
    crl_dir = tmp / "crls"
    crl_dir.mkdir()
    (crl_dir / "auth.crl").write_bytes(pki.crl("auth", 1, (revoked.cert.serial_number,)))
    (crl_dir / "sign.crl").write_bytes(pki.crl("sign", 1))
    db = str(tmp / "service.sqlite")
    config = ServiceConfig(
        db_url=db,
        anchors=pki.anchors(),
        crl_dir=crl_dir,
        workers=1,
        crl_poll_seconds=0.1,
        crl_refresh_seconds=0.0,
        max_body=64 * 1024,
        key_cache_seconds=0.0,
    )
    with thread_service(config) as (base, app):
        yield Svc(base, app, db, add_key(db), pki, crl_dir, user, revoked, signer)


def test_openapi_lists_the_versioned_api(svc: Svc) -> None:
    paths = HTTP.get(svc.base + "/openapi.json").json()["paths"]
    for p in ("/v1/challenges", "/v1/logins", "/v1/signatures", "/v1/status-checks"):
        assert p in paths
    assert "/v1/revocation" in paths and "/healthz" in paths and "/readyz" in paths
    schemas = HTTP.get(svc.base + "/openapi.json").json()["components"]["schemas"]
    crl = schemas["CrlOut"]["properties"]
    assert {"issuer_key", "number", "next_update", "stale"} <= set(crl)


def test_login_valid_once_then_replay_refused(svc: Svc) -> None:
    ch = svc.challenge()
    assert len(base64.b64decode(ch["nonce"])) >= 32
    before = svc.records()
    r = HTTP.post(svc.base + "/v1/logins", headers=svc.h, json=login_body(svc.user, ch))
    assert r.status_code == 200
    out = r.json()
    assert out["status"] == "valid", out
    assert out["account_key"] == account_key(svc.user.cert)
    assert [a["status"] for a in out["revocation"]] == ["good"]
    assert out["record"]["seq"] == before + 1
    again = HTTP.post(svc.base + "/v1/logins", headers=svc.h, json=login_body(svc.user, ch))
    assert again.json()["status"] == "invalid"
    assert "already used" in " ".join(again.json()["reasons"])
    assert svc.records() == before + 2


def test_login_with_revoked_or_wrong_signature(svc: Svc) -> None:
    out = HTTP.post(
        svc.base + "/v1/logins", headers=svc.h, json=login_body(svc.revoked, svc.challenge())
    ).json()
    assert out["status"] == "invalid"
    assert out["revocation"][0]["status"] == "revoked"
    body = login_body(svc.user, svc.challenge())
    body["signature"] = login_body(svc.user, svc.challenge())["signature"]  # other nonce
    assert HTTP.post(svc.base + "/v1/logins", headers=svc.h, json=body).json()["status"] == (
        "invalid"
    )


def test_unauthenticated_requests_leave_only_a_log_line(
    svc: Svc, caplog: pytest.LogCaptureFixture
) -> None:
    before = svc.records()
    body = login_body(svc.user, svc.challenge())
    with caplog.at_level(logging.WARNING, logger="jpki.service.access"):
        assert HTTP.post(svc.base + "/v1/logins", json=body).status_code == 401
        bad = {"X-API-Key": svc.key[:-2] + "xx"}
        assert HTTP.post(svc.base + "/v1/logins", headers=bad, json=body).status_code == 401
        assert HTTP.post(svc.base + "/v1/challenges").status_code == 401
    assert svc.records() == before
    lines = [r.getMessage() for r in caplog.records if r.name == "jpki.service.access"]
    assert len(lines) == 3 and all(line.startswith("401 ") for line in lines)
    assert svc.key not in caplog.text
    # The challenge was not spent by the refused attempts.
    assert HTTP.post(svc.base + "/v1/logins", headers=svc.h, json=body).json()["status"] == (
        "valid"
    )


def test_revoked_key_and_rate_limit(svc: Svc) -> None:
    from jpki.service.db import Database
    from jpki.service.state import add_key as add
    from jpki.service.state import revoke_key

    d = Database(svc.db)
    rec, key = add(d, "slow", 2)
    h = {"X-API-Key": key}
    codes = [HTTP.post(svc.base + "/v1/challenges", headers=h).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    revoke_key(d, rec.id)
    d.close()
    assert HTTP.post(svc.base + "/v1/challenges", headers=h).status_code == 401


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({}, "Field required"),
        ({"challenge_id": "x", "certificate": "@@", "signature": ""}, "not base64"),
        ({"challenge_id": "x", "certificate": b64(b"\x30\x03\x02\x01\x01"), "signature": ""}, ""),
        ({"challenge_id": ["x"], "certificate": "", "signature": ""}, "challenge_id"),
    ],
)
def test_malformed_login_is_400_with_a_reason(svc: Svc, body: dict[str, Any], why: str) -> None:
    r = HTTP.post(svc.base + "/v1/logins", headers=svc.h, json=body)
    assert r.status_code == 400
    text = json.dumps(r.json())
    assert why in text and "Traceback" not in text


def test_malformed_bodies_never_500(svc: Svc) -> None:
    for raw in (b"", b"{", b"[]", b'"x"', b"\xff\xfe", b'{"certificates": []}'):
        for path in ("/v1/logins", "/v1/signatures", "/v1/status-checks"):
            r = HTTP.post(
                svc.base + path,
                headers={**svc.h, "content-type": "application/json"},
                content=raw,
            )
            assert r.status_code == 400, (path, raw, r.text)
    both = {"cms": b64(b"x"), "certificate": b64(svc.signer.der), "signature": "AA=="}
    assert HTTP.post(svc.base + "/v1/signatures", headers=svc.h, json=both).status_code == 400
    junk = {"cms": b64(b"\x30\x80junk")}
    r = HTTP.post(svc.base + "/v1/signatures", headers=svc.h, json=junk)
    assert r.status_code == 400 and r.json()["error"]


_TEXT = st.text(max_size=40) | st.sampled_from(["", "AA==", "-----BEGIN CERTIFICATE-----"])
_VALUE = _TEXT | st.integers() | st.none() | st.lists(_TEXT, max_size=3) | st.booleans()
_FIELDS = st.sampled_from(
    ["certificate", "signature", "data", "digest", "hash", "purpose", "cms", "content",
     "challenge_id", "certificates", "x"]
)  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.dictionaries(_FIELDS, _VALUE, max_size=6), path=st.sampled_from(
    ["/v1/logins", "/v1/signatures", "/v1/status-checks"]))  # fmt: skip
def test_random_bodies_get_an_answer_never_a_500(svc: Svc, body: dict[str, Any], path: str) -> None:
    r = HTTP.post(svc.base + path, headers=svc.h, json=body)
    assert r.status_code in (200, 400), (r.status_code, r.text)
    assert "Traceback" not in r.text
    if r.status_code == 400:
        assert r.json()["error"]


def test_oversized_body_is_413(svc: Svc) -> None:
    big = {"certificates": [b64(b"x" * 70000)]}
    r = HTTP.post(svc.base + "/v1/status-checks", headers=svc.h, json=big)
    assert r.status_code == 413


def test_raw_signature_reports_basic_4_information(svc: Svc) -> None:
    data = b"contract text"
    sig = svc.signer.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    body = {"certificate": b64(svc.signer.der), "signature": b64(sig), "data": b64(data)}
    out = HTTP.post(svc.base + "/v1/signatures", headers=svc.h, json=body).json()
    assert out["status"] == "valid", out
    info = out["certificate"]["basic_info"]
    assert info["name"] and info["address"] and info["birth_date"]
    body["data"] = b64(b"other text")
    assert HTTP.post(svc.base + "/v1/signatures", headers=svc.h, json=body).json()["status"] == (
        "invalid"
    )


def test_cms_signature(svc: Svc, tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_bytes(svc.signer.pem)
    (tmp_path / "k.pem").write_bytes(
        svc.signer.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "d.txt").write_bytes(b"signed document")
    cms = subprocess.run(
        [
            *(
                "openssl",
                "cms",
                "-sign",
                "-binary",
                "-nodetach",
                "-outform",
                "DER",
                "-md",
                "sha256",
            ),
            *("-signer", str(tmp_path / "c.pem"), "-inkey", str(tmp_path / "k.pem")),
            *("-in", str(tmp_path / "d.txt")),
        ],
        check=True,
        capture_output=True,
    ).stdout
    out = HTTP.post(svc.base + "/v1/signatures", headers=svc.h, json={"cms": b64(cms)}).json()
    assert out["status"] == "valid", out
    assert [a["status"] for a in out["revocation"]] == ["good"]


def test_status_checks_many_at_once(svc: Svc) -> None:
    other = make_pki_foreign()
    certs = [b64(svc.user.der), b64(svc.revoked.der), b64(other)]
    out = HTTP.post(svc.base + "/v1/status-checks", headers=svc.h, json={"certificates": certs})
    assert out.status_code == 200
    items = out.json()["items"]
    assert [i["status"] for i in items] == ["good", "revoked", "unknown"]
    assert items[2]["detail"]
    bad = HTTP.post(
        svc.base + "/v1/status-checks", headers=svc.h, json={"certificates": [certs[0], "AAAA"]}
    )
    assert bad.status_code == 400 and "certificates[1]" in bad.json()["error"], bad.text


def make_pki_foreign() -> bytes:
    from jpki.testing.pki import TestPki

    return TestPki(seed="someone-else").issue_auth(label="x").der


def _drop_auth_crl(svc: Svc, crl: bytes, number: int) -> dict[str, Any]:
    """Rename a new auth CRL into the watched directory; /v1/revocation once it is loaded."""
    tmp = svc.crl_dir / "auth.crl.part"
    tmp.write_bytes(crl)
    tmp.rename(svc.crl_dir / "auth.crl")
    for _ in range(100):
        info: dict[str, Any] = HTTP.get(svc.base + "/v1/revocation", headers=svc.h).json()
        if number in [c["number"] for c in info["crls"]]:
            return info
        time.sleep(0.1)
    pytest.fail(f"CRL #{number} was not loaded")


def test_crl_dir_is_watched(svc: Svc) -> None:
    target = svc.user.cert.serial_number
    crl = svc.pki.crl("auth", 5, (svc.revoked.cert.serial_number, target))
    info = _drop_auth_crl(svc, crl, 5)
    assert all(len(c["issuer_key"]) == 64 and c["issuer"] for c in info["crls"])
    out = HTTP.post(
        svc.base + "/v1/status-checks", headers=svc.h, json={"certificates": [b64(svc.user.der)]}
    ).json()
    assert out["items"][0]["status"] == "revoked"
    # Going back to an older number is refused; the current CRL stays.
    (svc.crl_dir / "auth.crl").write_bytes(svc.pki.crl("auth", 2))
    time.sleep(0.5)
    info = HTTP.get(svc.base + "/v1/revocation", headers=svc.h).json()
    assert sorted(c["number"] for c in info["crls"]) == [1, 5]


def test_a_later_crl_cannot_undo_a_final_revocation(svc: Svc) -> None:
    # CRL #6 drops every entry; the store's history keeps what #5 declared final.
    _drop_auth_crl(svc, svc.pki.crl("auth", 6), 6)
    out = HTTP.post(
        svc.base + "/v1/status-checks", headers=svc.h, json={"certificates": [b64(svc.revoked.der)]}
    ).json()
    item = out["items"][0]
    assert item["status"] == "revoked" and "history" in item["source"], item
    with sqlite3.connect(svc.db) as c:
        body = c.execute("SELECT body FROM svc_audit ORDER BY seq DESC LIMIT 1").fetchone()[0]
    refs = json.loads(body)["evidence"]["crls"]
    assert {(r["number"], r["history"]) for r in refs} == {(6, False), (5, True)}, refs
    res = cli("audit", "verify", "--db", svc.db)
    assert res.exit_code == 0, res.output


def test_healthz_answers_while_the_pool_is_saturated(svc: Svc) -> None:
    rt = svc.app.state.rt
    jobs: list[Future[None]] = [rt.pool.submit(time.sleep, 1.5) for _ in range(rt.config.workers)]
    queued = [rt.pool.submit(time.sleep, 0) for _ in range(2)]
    r = HTTP.get(svc.base + "/healthz", timeout=1.2)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert not any(j.done() for j in jobs + queued), "the pool was not saturated"
    for j in jobs + queued:
        j.result()


def test_workers_run_below_the_event_loop(svc: Svc) -> None:
    import os

    rt = svc.app.state.rt
    assert rt.config.worker_nice > 0
    mine = os.nice(0)
    assert rt.pool.submit(os.nice, 0).result() == min(19, mine + rt.config.worker_nice)


def test_metrics_are_prometheus_text(svc: Svc) -> None:
    text = HTTP.get(svc.base + "/metrics").text
    assert "# TYPE jpki_requests_total counter" in text
    assert 'jpki_verdicts_total{kind="login",status="valid"}' in text
    assert "jpki_request_duration_seconds_bucket" in text
    assert "jpki_crl_age_seconds{" in text


def test_healthz_short_circuit_still_counts_and_leaves_other_methods_to_fastapi(svc: Svc) -> None:
    HTTP.get(svc.base + "/healthz")
    text = HTTP.get(svc.base + "/metrics").text
    assert 'jpki_requests_total{code="200",route="/healthz"}' in text or (
        'jpki_requests_total{route="/healthz",code="200"}' in text
    ), text
    r = HTTP.post(svc.base + "/healthz")
    assert r.status_code == 405


def test_readyz_and_records_check_out(svc: Svc, tmp_path: Path) -> None:
    assert HTTP.get(svc.base + "/readyz").status_code == 200
    fresh = svc.pki.pki.issue_auth(label="svc-fresh")  # svc.user may be revoked by now
    login = login_body(fresh, svc.challenge())
    assert HTTP.post(svc.base + "/v1/logins", headers=svc.h, json=login).json()["status"] == (
        "valid"
    )
    ok = cli("audit", "verify", "--db", svc.db, "--json")
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert report["ok"] and report["records"] == report["rechecked"] == svc.records()
    exported = cli("audit", "export", "--db", svc.db, "--since", "1d").stdout
    lines = [json.loads(line) for line in exported.splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, svc.records() + 1))
    assert all(r["hash"] and r["prev_hash"] for r in lines)
    logins = [r for r in lines if r["kind"] == "login" and r["verdict"]["status"] == "valid"]
    assert logins and all(
        r["evidence"]["crls"]
        and r["evidence"]["crls"][0]["number"] is not None
        and r["evidence"]["crls"][0]["issuer_key"]
        for r in logins
    ), "a valid login without the CRL (issuer key + number) that vouched for it"
    # A copy with one verdict changed (and its hash fixed up) fails the evidence re-check;
    # one with a changed body but the old hash fails the chain.
    for how in ("verdict", "body"):
        copy = tmp_path / f"{how}.sqlite"
        with sqlite3.connect(svc.db) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
        with sqlite3.connect(copy) as c:
            seq, body = c.execute(
                'SELECT seq, body FROM svc_audit WHERE body LIKE \'%"status":"valid"%\' LIMIT 1'
            ).fetchone()
            rec = json.loads(body)
            rec["verdict"]["status"] = "invalid"
            from jpki.service.audit import canonical, record_hash

            new = canonical(rec).decode()
            if how == "verdict":
                # Rewrite the whole chain from here on so that only the evidence disagrees.
                c.execute(
                    "UPDATE svc_audit SET body=?, hash=? WHERE seq=?", (new, record_hash(rec), seq)
                )
                _rechain(c, seq)
            else:
                c.execute("UPDATE svc_audit SET body=? WHERE seq=?", (new, seq))
        bad = cli("audit", "verify", "--db", str(copy))
        assert bad.exit_code == 1, (how, bad.stdout)
        assert f"record {seq}:" in bad.stdout


def cli(*args: str) -> Any:
    """Run a jpki command in this process (as the installed entry point would)."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _rechain(c: sqlite3.Connection, start: int) -> None:
    from jpki.service.audit import canonical, record_hash

    prev = c.execute("SELECT hash FROM svc_audit WHERE seq=?", (start,)).fetchone()[0]
    rows = c.execute(
        "SELECT seq, body FROM svc_audit WHERE seq>? ORDER BY seq", (start,)
    ).fetchall()
    last = start
    for seq, body in rows:
        rec = json.loads(body)
        rec["prev_hash"] = prev
        h = record_hash(rec)
        c.execute(
            "UPDATE svc_audit SET body=?, prev_hash=?, hash=? WHERE seq=?",
            (canonical(rec).decode(), prev, h, seq),
        )
        prev, last = h, seq
    c.execute("UPDATE svc_state SET value=? WHERE name='audit_head'", (f"{last}:{prev}",))


def test_stale_crl_under_hard_fail_is_never_good(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    user = pki.pki.issue_auth(label="svc-user")
    crl_dir = tmp_path / "crls"
    crl_dir.mkdir()
    (crl_dir / "auth.crl").write_bytes(pki.crl("auth", 1, stale=True))
    db = str(tmp_path / "s.sqlite")
    config = ServiceConfig(db_url=db, anchors=pki.anchors(), crl_dir=crl_dir, workers=1)
    with thread_service(config) as (base, _app):
        h = {"X-API-Key": add_key(db)}
        ready = HTTP.get(base + "/readyz")
        assert ready.status_code == 503 and "stale" in " ".join(ready.json()["reasons"])
        info = HTTP.get(base + "/v1/revocation", headers=h).json()
        assert info["stale"] and info["hard_fail"]
        ch = HTTP.post(base + "/v1/challenges", headers=h).json()
        out = HTTP.post(base + "/v1/logins", headers=h, json=login_body(user, ch)).json()
        assert out["status"] == "indeterminate", out
        st = HTTP.post(
            base + "/v1/status-checks", headers=h, json={"certificates": [b64(user.der)]}
        ).json()
        assert st["items"][0]["status"] == "unknown"


def test_keys_cli_prints_the_key_once(tmp_path: Path) -> None:
    db = str(tmp_path / "k.sqlite")
    out = cli("serve", "keys", "add", "--db", db, "bank").stdout
    key = out.strip().splitlines()[-1]
    assert key.startswith("jpk_")
    listed = cli("serve", "keys", "list", "--db", db, "--json").stdout
    rows = json.loads(listed)
    assert [r["name"] for r in rows] == ["bank"] and key not in listed
    assert key not in raw_db_bytes(db).decode("latin-1")
    rev = cli("serve", "keys", "revoke", "--db", db, rows[0]["id"])
    assert rev.exit_code == 0
    nokey = cli("serve", "keys", "revoke", "--db", db, "nope")
    assert nokey.exit_code == 2 and "Traceback" not in nokey.output


def test_no_record_no_answer(svc: Svc, monkeypatch: pytest.MonkeyPatch) -> None:
    from jpki.service import audit
    from jpki.service.db import ServiceDbError

    def broken(*_a: object, **_k: object) -> None:
        raise ServiceDbError("disk full")

    ch = svc.challenge()
    before = svc.records()
    monkeypatch.setattr(audit, "append", broken)
    r = HTTP.post(svc.base + "/v1/logins", headers=svc.h, json=login_body(svc.user, ch))
    assert r.status_code == 503
    assert "status" not in r.json() and "account_key" not in r.json()
    monkeypatch.undo()
    assert svc.records() == before


def _signed_pdf(svc: Svc, tmp_path: Path) -> bytes:
    import io

    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    from pdf_helpers import minimal_pdf

    key = tmp_path / "k.pem"
    key.write_bytes(
        svc.signer.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "c.pem").write_bytes(svc.signer.pem)
    (tmp_path / "ca.pem").write_bytes(svc.pki.pki.sign_ca.pem)
    signer = signers.SimpleSigner.load(
        str(key), str(tmp_path / "c.pem"), ca_chain_files=(str(tmp_path / "ca.pem"),)
    )
    assert signer is not None
    out = io.BytesIO()
    signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(minimal_pdf())),
        signers.PdfSignatureMetadata(field_name="Sig1"),
        signer=signer,
        output=out,
    )
    return out.getvalue()


def test_documents_pdf(svc: Svc, tmp_path: Path) -> None:
    pytest.importorskip("pyhanko")
    pdf = _signed_pdf(svc, tmp_path)
    r = HTTP.post(svc.base + "/v1/documents", headers=svc.h, json={"pdf": b64(pdf)})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "valid", out
    sig = out["signatures"][0]
    assert sig["basic_info"]["name"] and sig["subject"]
    # A byte changed inside the signed range: invalid, and recorded like the valid one.
    i = pdf.index(b"JPKI test document")
    bad = pdf[:i] + b"X" + pdf[i + 1 :]
    out = HTTP.post(svc.base + "/v1/documents", headers=svc.h, json={"pdf": b64(bad)}).json()
    assert out["status"] == "invalid"
    junk = HTTP.post(svc.base + "/v1/documents", headers=svc.h, json={"pdf": b64(b"%PDF-1.7 x")})
    assert junk.status_code == 400 and junk.json()["error"]
    res = cli("audit", "verify", "--db", svc.db)
    assert res.exit_code == 0, res.output


def test_serve_hands_its_options_to_uvicorn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda _app, **kw: seen.update(kw))
    db = str(tmp_path / "o.sqlite")
    res = cli("serve", "--db", db, "--port", "9", "--keep-alive", "65")
    assert res.exit_code == 0, res.output
    assert seen["timeout_keep_alive"] == 65 and seen["port"] == 9
    assert seen["host"] == "127.0.0.1"
    bad = CliRunner().invoke(main, ["serve", "--db", db, "--keep-alive", "0"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
