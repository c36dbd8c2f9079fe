"""現況確認 monitoring: at-least-once notices, hold -> final is news, --peek, exit codes
(1 newly revoked, 3 unknown, 130 interrupted), progress only on a terminal."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from jpki.cli import main
from jpki.revocation.index import RevocationReason
from jpki.revocation.monitor import MonitorEvent, mark_delivered, monitor
from jpki.revocation.progress import Progress
from jpki.revocation.store import RevocationStore
from jpki.testing.pki import Issued, TestPki, sample_person
from revocation_helpers import NOW, R


@pytest.fixture(scope="module")
def leaves(pki: TestPki) -> list[Issued]:
    return [pki.issue_signing(sample_person(i % 2), label=f"mon-{i}") for i in range(3)]


@pytest.fixture
def setup(pki: TestPki, leaves: list[Issued], tmp_path: Path) -> tuple[Path, Path]:
    certs = tmp_path / "certs"
    certs.mkdir()
    for i, lf in enumerate(leaves):
        (certs / f"c{i}.pem").write_bytes(lf.pem)
    return tmp_path / "rev.db", certs


def _crl(pki: TestPki, entries: list[tuple[int, R | None]], number: int) -> bytes:
    return pki.make_crl(
        "sign",
        [(s, r, NOW - timedelta(days=1)) for s, r in entries],
        this_update=NOW,
        number=number,
    )


def test_a_notice_that_was_not_written_is_reported_again(
    pki: TestPki, leaves: list[Issued], setup: tuple[Path, Path]
) -> None:
    db, certs = setup
    s0 = leaves[0].cert.serial_number
    with RevocationStore(db) as st:
        st.load(_crl(pki, [(s0, R.key_compromise)], 1), [pki.sign_ca.cert])

        def dies(ev: MonitorEvent) -> None:
            raise OSError("disk full")  # the output could not be written

        with pytest.raises(OSError):
            monitor(st, certs, at=NOW, deliver=dies)
        # without a deliver callback nothing is marked until the caller says it wrote them
        r = monitor(st, certs, at=NOW)
        assert [e.serial for e in r.newly_revoked] == [s0]
        r = monitor(st, certs, at=NOW)
        assert [e.serial for e in r.newly_revoked] == [s0]
        mark_delivered(st, r.newly_revoked)
        assert monitor(st, certs, at=NOW).newly_revoked == ()


def test_hold_then_final_is_a_new_notice_and_peek_consumes_nothing(
    pki: TestPki, leaves: list[Issued], setup: tuple[Path, Path]
) -> None:
    db, certs = setup
    s1 = leaves[1].cert.serial_number
    got: list[MonitorEvent] = []
    with RevocationStore(db) as st:
        st.load(_crl(pki, [(s1, R.certificate_hold)], 1), [pki.sign_ca.cert])
        peeked = monitor(st, certs, at=NOW, peek=True, deliver=got.append)
        assert [e.reason for e in peeked.newly_revoked] == [RevocationReason.CERTIFICATE_HOLD]
        first = monitor(st, certs, at=NOW, deliver=got.append)
        assert [e.reason for e in first.newly_revoked] == [RevocationReason.CERTIFICATE_HOLD]
        assert monitor(st, certs, at=NOW, deliver=got.append).newly_revoked == ()
        st.load(_crl(pki, [(s1, R.affiliation_changed)], 2), [pki.sign_ca.cert])
        final = monitor(st, certs, at=NOW, deliver=got.append)
        assert [e.reason for e in final.newly_revoked] == [RevocationReason.AFFILIATION_CHANGED]
        assert monitor(st, certs, at=NOW, deliver=got.append).already_reported == 1
    assert len(got) == 3


def test_released_hold_is_news_when_held_again(
    pki: TestPki, leaves: list[Issued], setup: tuple[Path, Path]
) -> None:
    db, certs = setup
    s2 = leaves[2].cert.serial_number
    with RevocationStore(db) as st:
        st.load(_crl(pki, [(s2, R.certificate_hold)], 1), [pki.sign_ca.cert])
        assert len(monitor(st, certs, at=NOW, deliver=lambda e: None).newly_revoked) == 1
        st.load(_crl(pki, [], 2), [pki.sign_ca.cert])
        assert monitor(st, certs, at=NOW, deliver=lambda e: None).newly_revoked == ()
        st.load(_crl(pki, [(s2, R.certificate_hold)], 3), [pki.sign_ca.cert])
        assert len(monitor(st, certs, at=NOW, deliver=lambda e: None).newly_revoked) == 1


def test_cli_peek_and_exit_codes(
    pki: TestPki, leaves: list[Issued], setup: tuple[Path, Path]
) -> None:
    db, certs = setup
    with RevocationStore(db) as st:
        st.load(_crl(pki, [(leaves[0].cert.serial_number, R.superseded)], 1), [pki.sign_ca.cert])
    run = CliRunner().invoke
    at = ["--at", (NOW + timedelta(hours=1)).isoformat()]
    for _ in range(2):
        res = run(main, ["revocation", "monitor", str(db), str(certs), *at, "--peek", "--json"])
        assert res.exit_code == 1, res.output
        d = json.loads(res.stdout)
        assert d["peek"] is True and len(d["newly_revoked"]) == 1
    res = run(main, ["revocation", "monitor", str(db), str(certs), *at])
    assert res.exit_code == 1 and res.stdout.startswith("REVOKED "), res.output
    assert "superseded" in res.stdout
    # not a terminal: no progress line on stderr
    assert "checking" not in res.stderr
    res = run(main, ["revocation", "monitor", str(db), str(certs), *at, "--quiet"])
    assert res.exit_code == 0 and "0 newly revoked" in res.stdout
    late = ["--at", (NOW + timedelta(days=3)).isoformat()]
    res = run(main, ["revocation", "monitor", str(db), str(certs), *late])
    assert res.exit_code == 3 and "UNKNOWN" in res.stdout


_SLOW_MONITOR = """
import sys, time
from jpki.revocation import store as S
orig = S.RevocationStore.check
def slow(self, *a, **k):
    r = orig(self, *a, **k)
    sys.stderr.write("checked\\n"); sys.stderr.flush()
    time.sleep(0.5)
    return r
S.RevocationStore.check = slow
from jpki.cli import main
main(sys.argv[1:], prog_name="jpki")
"""


def test_ctrl_c_exits_130_and_keeps_written_notices(
    pki: TestPki, leaves: list[Issued], setup: tuple[Path, Path]
) -> None:
    db, certs = setup
    s0 = leaves[0].cert.serial_number
    with RevocationStore(db) as st:
        st.load(_crl(pki, [(s0, R.key_compromise)], 1), [pki.sign_ca.cert])
    at = (NOW + timedelta(hours=1)).isoformat()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SLOW_MONITOR,
            *("revocation", "monitor", str(db), str(certs)),
            "--at",
            at,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    seen = 0
    while seen < 2 and time.monotonic() < deadline:  # c0 (revoked) then c1 checked
        if proc.stderr.readline() == b"checked\n":
            seen += 1
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    # c0's notice was written before the interruption, so it is marked and not repeated
    assert out.decode().startswith("REVOKED ")
    with RevocationStore(db) as st:
        assert st.reported_state(_fp(leaves[0])) == "final"


def _fp(lf: Issued) -> str:
    from cryptography.hazmat.primitives import hashes

    return lf.cert.fingerprint(hashes.SHA256()).hex()


def test_progress_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        with Progress("checking", 10, unit="certificates", stream=stream) as p:
            for i in range(11):
                p.update(i, force=True)
    assert "checking: 10/10 certificates" in tty.getvalue()
    assert "ETA" in tty.getvalue()
    assert pipe.getvalue() == ""
    quiet = Tty()
    with Progress("x", 3, stream=quiet, enabled=False) as p:
        p.update(2, force=True)
    assert quiet.getvalue() == ""


def _run_on_a_tty_stderr(args: list[str]) -> tuple[int, str]:
    """Run ``python -m jpki ARGS`` with stderr on a pseudo-terminal; returns (rc, stderr)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jpki", *args],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=os.environ.copy(),
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO once the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_cli_progress_on_a_terminal_only(
    pki: TestPki, leaves: list[Issued], tmp_path: Path
) -> None:
    crl = tmp_path / "x.crl"
    crl.write_bytes(_crl(pki, [(leaves[0].cert.serial_number, R.superseded)], 1))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.sign_ca.pem)
    load = ["revocation", "store", "load", str(tmp_path / "p.db"), str(crl), "--issuer", str(ca)]
    rc, err = _run_on_a_tty_stderr(load)
    assert rc == 0 and "parsing: 1" in err and "writing: 1/1 entries" in err, err
    rc, err = _run_on_a_tty_stderr([*load, "--quiet"])
    assert rc == 0 and "parsing" not in err and "writing" not in err, err
    # not a terminal: nothing on stderr
    proc = subprocess.run(
        [sys.executable, "-m", "jpki", *load], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_cli_with_a_postgresql_store(
    pki: TestPki, leaves: list[Issued], setup: tuple[Path, Path], pg_server: object
) -> None:
    from pg_helpers import PgServer

    assert isinstance(pg_server, PgServer)
    url = pg_server.create_db("cli")
    _, certs = setup
    crl = certs.parent / "pg.crl"
    crl.write_bytes(_crl(pki, [(leaves[1].cert.serial_number, R.affiliation_changed)], 3))
    ca = certs.parent / "ca.pem"
    ca.write_bytes(pki.sign_ca.pem)
    run = CliRunner().invoke
    res = run(main, ["revocation", "store", "load", url, str(crl), "--issuer", str(ca)])
    assert res.exit_code == 0 and "#3" in res.stdout, res.output
    at = ["--at", (NOW + timedelta(hours=1)).isoformat()]
    res = run(main, ["revocation", "monitor", url, str(certs), *at, "--json"])
    assert res.exit_code == 1 and len(json.loads(res.stdout)["newly_revoked"]) == 1
    res = run(main, ["revocation", "monitor", url, str(certs), *at])
    assert res.exit_code == 0, res.output
    cert = certs / "c1.pem"
    res = run(
        main,
        ["revocation", "check", str(cert), "--issuer", str(ca), "--store", url, *at, "--json"],
    )
    assert res.exit_code == 1 and json.loads(res.stdout)["source"] == "store:crl#3"
    # the password of a URL never shows in an error
    bad = "postgresql://u:s3cret@127.0.0.1:1/none"
    res = run(main, ["revocation", "store", "load", bad, str(crl), "--issuer", str(ca)])
    assert res.exit_code == 2 and "s3cret" not in res.output, res.output
