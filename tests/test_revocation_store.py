"""Revocation store (atomic generations, CRL numbers), policy, monitoring and the CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from jpki.cli import main
from jpki.errors import CrlError, RevocationError, UsageError
from jpki.revocation.crl import Crl
from jpki.revocation.index import RevocationReason
from jpki.revocation.monitor import REASON_MEANING, monitor
from jpki.revocation.policy import (
    RevocationPolicy,
    RevocationStatus,
    check_revocation,
)
from jpki.revocation.store import RevocationStore
from jpki.testing.pki import Issued, TestPki, sample_person
from revocation_helpers import NOW, R, crl_with_ext, make_idp


@pytest.fixture(scope="module")
def leaves(pki: TestPki) -> list[Issued]:
    return [pki.issue_signing(sample_person(i % 2), label=f"store-{i}") for i in range(4)]


def _crl(
    pki: TestPki, entries: list[tuple[int, x509.ReasonFlags | None]], number: int, **kw: object
) -> bytes:
    return pki.make_crl(
        "sign",
        [(s, r, NOW - timedelta(days=1)) for s, r in entries],
        this_update=NOW,
        number=number,
        **kw,  # type: ignore[arg-type]
    )


# --- store ------------------------------------------------------------------------------------


def test_store_load_and_check(pki: TestPki, leaves: list[Issued], tmp_path: Path) -> None:
    db = tmp_path / "rev.db"
    with RevocationStore(db) as st:
        r = st.load(
            _crl(pki, [(leaves[0].cert.serial_number, R.affiliation_changed)], 3),
            [pki.sign_ca.cert],
        )
        assert r.number == 3 and r.entries == 1 and r.replaced is None
    # a new process (new connection) answers from the persisted index
    with RevocationStore(db) as st:
        res = st.check(leaves[0].cert, pki.sign_ca.cert, at=NOW + timedelta(hours=1))
        assert res.status is RevocationStatus.REVOKED
        assert res.reason is RevocationReason.AFFILIATION_CHANGED
        assert st.check(leaves[1].cert, pki.sign_ca.cert, at=NOW).status is RevocationStatus.GOOD
        stale = st.check(leaves[1].cert, pki.sign_ca.cert, at=NOW + timedelta(days=2))
        assert stale.status is RevocationStatus.UNKNOWN and "stale" in stale.detail


def test_store_numbers_never_go_backwards(pki: TestPki, tmp_path: Path) -> None:
    with RevocationStore(tmp_path / "rev.db") as st:
        st.load(_crl(pki, [(1, None)], 5), [pki.sign_ca.cert])
        with pytest.raises(CrlError, match="backwards"):
            st.load(_crl(pki, [(1, None)], 4), [pki.sign_ca.cert])
        with pytest.raises(CrlError, match="same number"):
            st.load(_crl(pki, [(2, None)], 5), [pki.sign_ca.cert])
        r = st.load(_crl(pki, [(1, None), (2, None)], 6), [pki.sign_ca.cert])
        assert r.replaced == 5
        assert [c.number for c in st.current()] == [6]


def test_store_rejects_unverified_crl(pki: TestPki, pki_2015: TestPki, tmp_path: Path) -> None:
    with RevocationStore(tmp_path / "rev.db") as st, pytest.raises(CrlError):
        st.load(_crl(pki, [(1, None)], 1), [pki_2015.sign_ca.cert])


def test_crash_mid_load_keeps_old_crl(pki: TestPki, leaves: list[Issued], tmp_path: Path) -> None:
    db = tmp_path / "rev.db"
    serial = leaves[0].cert.serial_number
    with RevocationStore(db) as st:
        st.load(_crl(pki, [(serial, R.key_compromise)], 1), [pki.sign_ca.cert])
        with pytest.raises(RevocationError, match="simulated crash"):
            st.load(_crl(pki, [], 2), [pki.sign_ca.cert], _fail_before_commit=True)
        assert [c.number for c in st.current()] == [1]
    # a crash in another process that dies mid-transaction: the database stays at #1
    script = (
        "import os, sys\n"
        "from jpki.revocation.store import RevocationStore\n"
        "from jpki.revocation.crl import Crl\n"
        "from cryptography import x509\n"
        "st = RevocationStore(sys.argv[1])\n"
        "st._db.execute('BEGIN IMMEDIATE')\n"
        "st._db.execute(\"INSERT INTO crl_current VALUES (x'00', x'', 0, 999)\")\n"
        "os._exit(9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(db)], capture_output=True)
    assert proc.returncode == 9
    with RevocationStore(db) as st:
        assert [c.number for c in st.current()] == [1]
        res = st.check(leaves[0].cert, pki.sign_ca.cert, at=NOW)
        assert res.status is RevocationStatus.REVOKED


def test_readers_see_old_crl_until_commit(
    pki: TestPki, leaves: list[Issued], tmp_path: Path
) -> None:
    """A second connection queries while a real load runs: old CRL until COMMIT, then new."""
    db = tmp_path / "rev.db"
    serial = leaves[2].cert.serial_number
    with RevocationStore(db) as st:
        st.load(_crl(pki, [], 1), [pki.sign_ca.cert])
    writer = RevocationStore(db)
    reader = RevocationStore(db)
    seen: list[tuple[str, RevocationStatus, list[int | None]]] = []

    def during_load(sql: str) -> None:
        # Runs inside the writer's transaction, as each statement starts (also the COMMIT).
        if sql.startswith(("INSERT INTO crl_chunk", "INSERT INTO crl_current", "COMMIT")):
            res = reader.check(leaves[2].cert, pki.sign_ca.cert, at=NOW)
            seen.append((sql.split()[0], res.status, [c.number for c in reader.current()]))

    try:
        writer._db.set_trace_callback(during_load)
        writer.load(_crl(pki, [(serial, R.superseded)], 2), [pki.sign_ca.cert])
        writer._db.set_trace_callback(None)
        assert [s[0] for s in seen] == ["INSERT", "INSERT", "COMMIT"], seen
        # the pointer moved and the new chunks were written, yet the reader saw #1 throughout
        assert all(s[1:] == (RevocationStatus.GOOD, [1]) for s in seen), seen
        after = reader.check(leaves[2].cert, pki.sign_ca.cert, at=NOW)
        assert after.status is RevocationStatus.REVOKED and after.source == "store:crl#2"
    finally:
        writer.close()
        reader.close()


def test_cached_current_crls_follow_every_load(
    pki: TestPki, leaves: list[Issued], tmp_path: Path
) -> None:
    """check() keeps the current-CRL list between calls: a load by this connection or by
    another one must still be seen by the very next check."""
    db = tmp_path / "rev.db"
    serial = leaves[1].cert.serial_number
    with RevocationStore(db) as st, RevocationStore(db) as other:
        st.load(_crl(pki, [], 1), [pki.sign_ca.cert])
        assert st.check(leaves[1].cert, pki.sign_ca.cert, at=NOW).source == "store:crl#1"
        st.load(_crl(pki, [(serial, R.certificate_hold)], 2), [pki.sign_ca.cert])  # own commit
        res = st.check(leaves[1].cert, pki.sign_ca.cert, at=NOW)
        assert res.status is RevocationStatus.REVOKED and res.source == "store:crl#2"
        other.load(_crl(pki, [], 3), [pki.sign_ca.cert])  # another connection's commit
        res = st.check(leaves[1].cert, pki.sign_ca.cert, at=NOW)
        assert res.status is RevocationStatus.GOOD and res.source == "store:crl#3"


def test_process_killed_mid_load_loses_nothing(
    pki: TestPki, leaves: list[Issued], tmp_path: Path
) -> None:
    """SIGKILL-like death of a loading process at the COMMIT: the store keeps the old CRL."""
    db = tmp_path / "rev.db"
    serial = leaves[0].cert.serial_number
    with RevocationStore(db) as st:
        st.load(_crl(pki, [(serial, R.key_compromise)], 1), [pki.sign_ca.cert])
    new = tmp_path / "new.crl"
    new.write_bytes(_crl(pki, [], 2))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.sign_ca.pem)
    script = (
        "import os, sys\n"
        "from cryptography import x509\n"
        "from jpki.revocation.store import RevocationStore\n"
        "st = RevocationStore(sys.argv[1])\n"
        "ca = x509.load_pem_x509_certificate(open(sys.argv[3], 'rb').read())\n"
        "def die(sql):\n"
        "    if sql.startswith('COMMIT'):\n"
        "        os._exit(9)\n"
        "st._db.set_trace_callback(die)\n"
        "st.load(open(sys.argv[2], 'rb').read(), [ca])\n"
        "sys.exit(0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(db), str(new), str(ca)], capture_output=True
    )
    assert proc.returncode == 9, proc.stderr
    with RevocationStore(db) as st:
        assert [c.number for c in st.current()] == [1]
        assert st.check(leaves[0].cert, pki.sign_ca.cert, at=NOW).status is (
            RevocationStatus.REVOKED
        )
        # and the next load of #2 goes through normally
        assert st.load(new.read_bytes(), [pki.sign_ca.cert]).replaced == 1


def test_store_scopes_and_deltas(pki: TestPki, leaves: list[Issued], tmp_path: Path) -> None:
    from jpki.testing.crl import header_crl, splice_entries

    p0 = sample_person(0)
    dp0 = pki.crl_dp_name(p0)
    in_scope = [lf for lf in leaves if dp0 in _dps(lf.cert)]
    out_scope = [lf for lf in leaves if dp0 not in _dps(lf.cert)]
    assert in_scope and out_scope
    a = in_scope[0].cert.serial_number
    base = _crl(pki, [(a, R.certificate_hold)], 10, idp_name=dp0)
    header = header_crl(
        pki.sign_ca.key,
        pki.sign_ca.cert.subject,
        this_update=NOW,
        next_update=NOW + timedelta(days=1),
        number=11,
        extensions=[
            x509.DeltaCRLIndicator(10),
            x509.IssuingDistributionPoint(
                [x509.DirectoryName(dp0)], None, False, False, None, False, False
            ),
        ],
    )
    body = Crl.load(_crl(pki, [(a, R.remove_from_crl)], 1))
    assert body.layout.revoked is not None
    _, s, e = body.layout.revoked
    delta = splice_entries(header, body.der[s:e], pki.sign_ca.key)
    with RevocationStore(tmp_path / "rev.db") as st:
        st.load(base, [pki.sign_ca.cert])
        held = st.check(in_scope[0].cert, pki.sign_ca.cert, at=NOW)
        assert held.status is RevocationStatus.REVOKED
        assert held.reason is RevocationReason.CERTIFICATE_HOLD
        # no CRL covers the other municipality
        assert (
            st.check(out_scope[0].cert, pki.sign_ca.cert, at=NOW).status is RevocationStatus.UNKNOWN
        )
        st.load(delta, [pki.sign_ca.cert])
        released = st.check(in_scope[0].cert, pki.sign_ca.cert, at=NOW)
        assert released.status is RevocationStatus.GOOD and "delta#11" in released.source


def _dps(cert: x509.Certificate) -> list[x509.Name]:
    from jpki.revocation.crl import cert_dp_names

    return list(cert_dp_names(cert))


# --- policy -----------------------------------------------------------------------------------


def test_policy_hard_and_soft_fail(pki: TestPki, leaves: list[Issued]) -> None:
    crl = _crl(pki, [(leaves[0].cert.serial_number, R.superseded)], 1)
    good = check_revocation(leaves[1].cert, pki.sign_ca.cert, crls=[crl], at=NOW)
    assert good.status is RevocationStatus.GOOD and good.source == "crl#1"
    revoked = check_revocation(leaves[0].cert, pki.sign_ca.cert, crls=[crl], at=NOW)
    assert revoked.status is RevocationStatus.REVOKED
    assert revoked.reason is RevocationReason.SUPERSEDED
    late = NOW + timedelta(days=3)
    stale = check_revocation(leaves[1].cert, pki.sign_ca.cert, crls=[crl], at=late)
    assert stale.status is RevocationStatus.UNKNOWN and "stale" in stale.detail
    # A stale CRL cannot vouch for "not revoked", but what it does list stays revoked.
    listed = check_revocation(leaves[0].cert, pki.sign_ca.cert, crls=[crl], at=late)
    assert listed.status is RevocationStatus.REVOKED and "not fresh" in listed.source
    soft = check_revocation(
        leaves[1].cert,
        pki.sign_ca.cert,
        crls=[crl],
        at=late,
        policy=RevocationPolicy(soft_fail=True),
    )
    # soft-fail accepts the unknown status without calling it good
    assert soft.status is RevocationStatus.UNKNOWN and soft.soft_failed and soft.accepted
    assert "NOT established" in soft.detail
    aged = check_revocation(
        leaves[1].cert,
        pki.sign_ca.cert,
        crls=[crl],
        at=NOW + timedelta(hours=5),
        policy=RevocationPolicy(max_crl_age=timedelta(hours=2)),
    )
    assert aged.status is RevocationStatus.UNKNOWN
    # revoked after the validation time (superseded): good at that time
    before = check_revocation(
        leaves[0].cert,
        pki.sign_ca.cert,
        crls=[crl],
        at=NOW - timedelta(days=2) + timedelta(hours=1),
    )
    assert before.status is RevocationStatus.UNKNOWN  # CRL not yet valid then
    with pytest.raises(UsageError):
        check_revocation(leaves[0].cert, pki.sign_ca.cert, at=NOW)
    with pytest.raises(UsageError):
        RevocationPolicy(prefer="ldap")  # type: ignore[arg-type]


def test_policy_wrong_generation_is_unknown(
    pki: TestPki, pki_2015: TestPki, leaves: list[Issued]
) -> None:
    crl = _crl(pki, [], 1)
    res = check_revocation(leaves[0].cert, pki_2015.sign_ca.cert, crls=[crl], at=NOW)
    assert res.status is RevocationStatus.UNKNOWN and "did not sign" in res.detail


# --- monitoring -------------------------------------------------------------------------------


def _written(event: object) -> None:
    """A deliver callback: the notice counts as written once this returns."""


def test_monitor_reports_each_revocation_once(
    pki: TestPki, leaves: list[Issued], tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    for i, lf in enumerate(leaves):
        (certs / f"c{i}.pem").write_bytes(lf.pem)
    db = tmp_path / "rev.db"
    with RevocationStore(db) as st:
        st.load(
            _crl(pki, [(leaves[0].cert.serial_number, R.affiliation_changed)], 1),
            [pki.sign_ca.cert],
        )
        first = monitor(st, certs, at=NOW, deliver=_written)
        assert first.checked == 4
        assert [e.reason for e in first.newly_revoked] == [RevocationReason.AFFILIATION_CHANGED]
        assert first.newly_revoked[0].meaning == "basic information changed (move, name change)"
        again = monitor(st, certs, at=NOW, deliver=_written)
        assert again.newly_revoked == () and again.already_reported == 1
        st.load(
            _crl(
                pki,
                [
                    (leaves[0].cert.serial_number, R.affiliation_changed),
                    (leaves[3].cert.serial_number, R.cessation_of_operation),
                ],
                2,
            ),
            [pki.sign_ca.cert],
        )
        third = monitor(st, certs, at=NOW, deliver=_written)
        assert [e.path.endswith("c3.pem") for e in third.newly_revoked] == [True]
        assert "death" in third.newly_revoked[0].meaning
    assert REASON_MEANING[RevocationReason.CERTIFICATE_HOLD] == "suspended"


def test_monitor_lists_an_unreadable_file_as_unknown_and_checks_the_rest(
    pki: TestPki, leaves: list[Issued], tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "a.pem").write_bytes(leaves[0].pem)
    (certs / "b.der").write_bytes(b"not a certificate")
    with RevocationStore(tmp_path / "rev.db") as st:
        st.load(
            _crl(pki, [(leaves[0].cert.serial_number, R.key_compromise)], 1), [pki.sign_ca.cert]
        )
        report = monitor(st, certs, at=NOW)
    assert report.checked == 2
    assert [e.path.endswith("a.pem") for e in report.newly_revoked] == [True]
    [bad] = report.unknown
    assert bad.path.endswith("b.der") and bad.serial is None
    assert "unreadable certificate file" in bad.detail
    assert bad.to_json()["serial_hex"] is None


# --- CLI --------------------------------------------------------------------------------------


@pytest.fixture
def files(pki: TestPki, leaves: list[Issued], tmp_path: Path) -> dict[str, Path]:
    out = {
        "ca": tmp_path / "ca.pem",
        "leaf0": tmp_path / "leaf0.pem",
        "leaf1": tmp_path / "leaf1.der",
        "crl": tmp_path / "crl.der",
        "bad": tmp_path / "bad.crl",
    }
    out["ca"].write_bytes(pki.sign_ca.pem)
    out["leaf0"].write_bytes(leaves[0].pem)
    out["leaf1"].write_bytes(leaves[1].der)
    out["crl"].write_bytes(_crl(pki, [(leaves[0].cert.serial_number, R.key_compromise)], 7))
    out["bad"].write_bytes(b"\x30\x03\x02\x01")
    return out


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.output


def test_cli_crl_info(files: dict[str, Path]) -> None:
    code, out = _run(
        "crl",
        "info",
        str(files["crl"]),
        "--issuer",
        str(files["ca"]),
        "--at",
        "2026-03-01T13:00:00Z",
        "--json",
    )
    assert code == 0, out
    d = json.loads(out)
    assert d["entries"] == 1 and d["number"] == 7 and d["signature"] == "valid" and d["fresh"]
    assert d["this_update"] == "2026-03-01T12:00:00+00:00"
    assert d["next_update"] == "2026-03-02T12:00:00+00:00"
    assert d["delta_base_number"] is None and d["signed_by"]
    code, out = _run("crl", "info", str(files["crl"]))
    assert code == 0 and "unchecked" in out
    code, out = _run("crl", "info", str(files["bad"]))
    assert code == 2 and "Traceback" not in out
    code, out = _run("crl", "info", str(files["crl"]), "--issuer", str(files["leaf0"]))
    assert code == 1 and "invalid" in out


def test_cli_check_exit_codes(files: dict[str, Path]) -> None:
    base = [
        "revocation",
        "check",
        "--issuer",
        str(files["ca"]),
        "--crl",
        str(files["crl"]),
        "--json",
    ]
    code, out = _run(*base, str(files["leaf0"]), "--at", "2026-03-01T13:00:00Z")
    assert code == 1, out
    d = json.loads(out)
    assert d["status"] == "revoked" and d["reason"] == "keyCompromise" and d["revoked_at"]
    assert d["source"] == "crl#7"
    code, out = _run(*base, str(files["leaf1"]), "--at", "2026-03-01T13:00:00Z")
    assert code == 0 and json.loads(out)["status"] == "good"
    code, out = _run(*base, str(files["leaf1"]), "--at", "2026-03-05T00:00:00Z")
    assert code == 3 and json.loads(out)["status"] == "unknown"
    code, out = _run(*base, str(files["leaf1"]), "--at", "2026-03-05T00:00:00Z", "--soft-fail")
    assert code == 0
    d = json.loads(out)
    assert d["status"] == "unknown" and d["soft_failed"] and d["accepted"]
    assert "NOT established" in d["detail"] and "stale" in d["detail"]
    code, _ = _run("revocation", "check", str(files["leaf1"]), "--issuer", str(files["ca"]))
    assert code == 2
    code, _ = _run(
        "revocation",
        "check",
        str(files["leaf1"]),
        "--issuer",
        str(files["ca"]),
        "--crl",
        str(files["bad"]),
    )
    assert code == 2
    code, _ = _run(*base, str(files["leaf1"]), "--at", "yesterday")
    assert code == 2
    # --max-crl-age: the CRL is 5 h old at --at; 2 h allowed -> unknown, 6 h -> good
    late = ["--at", "2026-03-01T17:00:00Z"]
    code, out = _run(*base, str(files["leaf1"]), *late, "--max-crl-age", "2")
    assert code == 3 and "maximum age" in json.loads(out)["detail"]
    code, out = _run(*base, str(files["leaf1"]), *late, "--max-crl-age", "6")
    assert code == 0 and json.loads(out)["status"] == "good"
    # NaN, negative, overflowing ages and timeouts: usage errors, never a traceback
    for bad in (["--max-crl-age", "nan"], ["--max-crl-age", "-1"], ["--max-crl-age", "1e20"]):
        code, out = _run(*base, str(files["leaf1"]), *bad)
        assert code == 2 and "Traceback" not in out, (bad, out)
    for t in ("nan", "inf", "0"):
        code, out = _run(*base, str(files["leaf1"]), "--timeout", t)
        assert code == 2 and "Traceback" not in out, (t, out)


def test_cli_store_and_monitor(files: dict[str, Path], tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    code, out = _run(
        "revocation", "store", "load", str(db), str(files["crl"]), "--issuer", str(files["ca"])
    )
    assert code == 0 and "#7" in out, out
    code, out = _run("revocation", "store", "load", str(db), str(files["crl"]), "--json")
    assert code == 0 and json.loads(out)[0]["number"] == 7
    code, out = _run(
        "revocation",
        "check",
        str(files["leaf0"]),
        "--issuer",
        str(files["ca"]),
        "--store",
        str(db),
        "--at",
        "2026-03-01T13:00:00Z",
        "--json",
    )
    assert code == 1 and json.loads(out)["source"].startswith("store:")
    store_check = ["revocation", "check", str(files["leaf1"]), "--issuer", str(files["ca"])]
    store_check += ["--store", str(db), "--at", "2026-03-01T17:00:00Z", "--json"]
    code, out = _run(*store_check, "--max-crl-age", "2")
    assert code == 3 and "maximum age" in json.loads(out)["detail"]
    code, out = _run(*store_check)
    assert code == 0 and json.loads(out)["source"] == "store:crl#7"
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "a.pem").write_bytes(files["leaf0"].read_bytes())
    (certs / "b.der").write_bytes(files["leaf1"].read_bytes())
    code, out = _run(
        "revocation", "monitor", str(db), str(certs), "--at", "2026-03-01T13:00:00Z", "--json"
    )
    assert code == 1, out
    d = json.loads(out)
    assert d["checked"] == 2 and len(d["newly_revoked"]) == 1
    assert d["newly_revoked"][0]["reason"] == "keyCompromise"
    code, out = _run("revocation", "monitor", str(db), str(certs), "--at", "2026-03-01T13:00:00Z")
    assert code == 0 and "0 newly revoked" in out
    code, _ = _run("revocation", "monitor", str(tmp_path / "none.db"), str(certs))
    assert code == 2


def test_store_file_is_sqlite(tmp_path: Path) -> None:
    with RevocationStore(tmp_path / "x.db"):
        pass
    tables = {
        r[0] for r in sqlite3.connect(tmp_path / "x.db").execute("SELECT name FROM sqlite_master")
    }
    assert {"crl_generation", "crl_current", "monitor_reported"} <= tables


def test_policy_indexes_the_same_crl_bytes_once(pki: TestPki, leaves: list[Issued]) -> None:
    from jpki.revocation.policy import _load_cached

    crl = _crl(pki, [(leaves[0].cert.serial_number, R.superseded)], 42)
    before = _load_cached.cache_info().hits
    for lf in leaves:
        check_revocation(lf.cert, pki.sign_ca.cert, crls=[crl], at=NOW)
    assert _load_cached.cache_info().hits >= before + len(leaves) - 1


def _one_line_error(args: list[str]) -> tuple[int, str]:
    """Run the CLI; the failure must be one 'error:' line, never an unhandled exception."""
    r = CliRunner().invoke(main, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    return r.exit_code, "\n".join(lines)


def test_cli_foreign_and_damaged_databases(
    files: dict[str, Path], pki: TestPki, tmp_path: Path
) -> None:
    """A non-SQLite file and a database damaged past its first page: one line, exit 2 / 3."""
    at = ["--at", "2026-03-01T13:00:00Z"]
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "a.pem").write_bytes(files["leaf0"].read_bytes())
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database " * 400)
    damaged = tmp_path / "damaged.db"
    with RevocationStore(damaged) as st:
        st.load(files["crl"].read_bytes(), [pki.sign_ca.cert])
    raw = bytearray(damaged.read_bytes())
    assert len(raw) > 8192
    raw[4096:] = bytes(len(raw) - 4096)  # the header page survives: open succeeds
    damaged.write_bytes(bytes(raw))
    for db in (foreign, damaged):
        check = ["revocation", "check", str(files["leaf0"]), "--issuer", str(files["ca"])]
        code, err = _one_line_error([*check, "--store", str(db), *at])
        # the store cannot say: revocation status unknown (hard-fail), never good
        assert code in (2, 3) and err.count("\n") == 0, (db, code, err)
        if db is damaged:
            assert code == 3
        code, err = _one_line_error(["revocation", "monitor", str(db), str(certs), *at])
        assert code == 2 and err.startswith("error:") and "\n" not in err, err
        code, err = _one_line_error(
            [
                "revocation",
                "store",
                "load",
                str(db),
                str(files["crl"]),
                "--issuer",
                str(files["ca"]),
            ]
        )
        assert code == 2 and err.startswith("error:") and "\n" not in err, err
    # the damage shows when the store is opened (schema check) or at the first query
    with (
        pytest.raises(RevocationError, match=r"unusable|cannot open"),
        RevocationStore(damaged) as st,
    ):
        st.current()


def test_policy_never_good_from_a_bad_or_foreign_crl(
    pki: TestPki, pki_2015: TestPki, leaves: list[Issued], tmp_path: Path
) -> None:
    """Wrong signature, another issuer's CRL, or the other CA generation: unknown, not good."""
    serial = leaves[0].cert.serial_number
    ca = pki.sign_ca.cert
    tampered = bytearray(_crl(pki, [(serial, R.key_compromise)], 4))
    i = tampered.find(serial.to_bytes((serial.bit_length() + 8) // 8, "big"))
    assert i > 0
    tampered[i + 1] ^= 0x01  # still well-formed, different serial listed: signature breaks
    res = check_revocation(leaves[0].cert, ca, crls=[bytes(tampered)], at=NOW)
    assert res.status is RevocationStatus.UNKNOWN and "signature" in res.detail
    auth_crl = pki.make_crl("auth", [], this_update=NOW, number=1)
    res = check_revocation(leaves[0].cert, ca, crls=[auth_crl], at=NOW)
    assert res.status is RevocationStatus.UNKNOWN and "no CRL covers" in res.detail
    # The 2015 CA shares the DN; its fresh, validly signed CRL does not cover 2023 certificates.
    # With the 2015 CA passed as issuer, "not listed" there must not become good.
    old_crl = pki_2015.make_crl("sign", [], this_update=NOW, number=9)
    for soft_fail in (False, True):
        res = check_revocation(
            leaves[0].cert,
            pki_2015.sign_ca.cert,
            crls=[old_crl],
            at=NOW,
            policy=RevocationPolicy(soft_fail=soft_fail),
        )
        assert res.status is RevocationStatus.UNKNOWN and "did not sign" in res.detail
    with RevocationStore(tmp_path / "s.db") as st:
        st.load(old_crl, [pki_2015.sign_ca.cert])
        res = st.check(leaves[0].cert, pki_2015.sign_ca.cert, at=NOW)
        assert res.status is RevocationStatus.UNKNOWN
    # soft-fail says in words that revocation was not established
    soft = check_revocation(
        leaves[1].cert,
        ca,
        crls=[auth_crl],
        at=NOW,
        policy=RevocationPolicy(soft_fail=True),
    )
    assert soft.status is RevocationStatus.UNKNOWN and soft.accepted
    assert "NOT established" in soft.detail


def test_store_refuses_scopes_it_cannot_represent(pki: TestPki, tmp_path: Path) -> None:
    """A URI-named partition or a CA-only CRL stored as 'the whole issuer' would answer good."""
    uri = [x509.UniformResourceIdentifier("http://crl.example/part7.crl")]
    with RevocationStore(tmp_path / "s.db") as st:
        for kw, match in (
            ({"full_name": uri}, "directoryName"),
            ({"only_contains_ca_certs": True}, "end-entity"),
        ):
            with pytest.raises(CrlError, match=match):
                st.load(crl_with_ext(pki, make_idp(**kw)), [pki.sign_ca.cert])
        assert st.current() == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ocsp_timeout": float("nan")},
        {"ocsp_timeout": float("inf")},
        {"ocsp_timeout": 0.0},
        {"max_crl_age": timedelta(hours=-1)},
    ],
)
def test_policy_refuses_nonsense_limits(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        RevocationPolicy(**kwargs)  # type: ignore[arg-type]


def test_store_keeps_a_final_revocation_from_an_out_of_date_crl(
    pki: TestPki, leaves: list[Issued], tmp_path: Path
) -> None:
    late = NOW + timedelta(days=3)  # past the stored CRL's nextUpdate
    with RevocationStore(tmp_path / "rev.db") as st:
        st.load(
            _crl(
                pki,
                [
                    (leaves[0].cert.serial_number, R.affiliation_changed),
                    (leaves[2].cert.serial_number, R.certificate_hold),
                ],
                1,
            ),
            [pki.sign_ca.cert],
        )
        listed = st.check(leaves[0].cert, pki.sign_ca.cert, at=late)
        assert listed.status is RevocationStatus.REVOKED and "not fresh" in listed.source
        assert st.check(leaves[1].cert, pki.sign_ca.cert, at=late).status is (
            RevocationStatus.UNKNOWN
        )
        held = st.check(leaves[2].cert, pki.sign_ca.cert, at=late)  # a hold may have been lifted
        assert held.status is RevocationStatus.UNKNOWN


def test_threads_opening_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    # A new SQLite store is switched to WAL on open; SQLite refuses that switch at once
    # ("database is locked") while another connection makes the same store, instead of
    # waiting: several workers starting together must all open it.
    for round_ in range(150):
        path = tmp_path / f"rev{round_}.db"
        errors: list[str] = []

        def open_store(p: Path = path, errs: list[str] = errors) -> None:
            try:
                with RevocationStore(str(p)) as st:
                    st.current()
            except RevocationError as exc:
                errs.append(str(exc))

        threads = [threading.Thread(target=open_store) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, (round_, errors)
