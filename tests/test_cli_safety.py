"""CLI-wide behaviour: start-up imports, console encodings, control characters in output,
regular-file-only input, one --at parser, JSON errors, Ctrl-C → 130, ``python -m jpki``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from jpki._files import InputFileError, read_regular_file, scan_directory
from jpki.apdu import CommandApdu, redact_command
from jpki.cli._common import error_code, parse_time, printable, safe_layout
from jpki.errors import NoCardError, TransportTimeoutError, UsageError, WrongPin
from jpki.testing.pki import TestPki, sample_person

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _jpki(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "jpki", *args],
        capture_output=True,
        env=_env(**env),
        timeout=timeout,
        check=False,
    )


# --- start-up -------------------------------------------------------------------------------


@pytest.mark.parametrize("arg", ["--version", "--help"])
def test_version_and_help_import_no_heavy_library(arg: str) -> None:
    code = (
        "import sys\n"
        "from jpki.cli import main\n"
        "try:\n"
        f"    main([{arg!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('numpy', 'pyhanko', 'pyhanko_certvalidator', 'asn1crypto', 'cryptography')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_python_dash_m_jpki() -> None:
    from jpki import __version__

    res = _jpki("--version")
    assert res.returncode == 0
    assert __version__ in res.stdout.decode()


# --- output ---------------------------------------------------------------------------------

NAME = "𠮷野 花子"  # 𠮷 (U+20BB7) is JIS X 0213, outside cp932
EVIL = "\x1b[2K\rVALID\x1b]0;x\x07\u202e"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("certs")
    pki = TestPki(now=datetime(2026, 6, 1, tzinfo=UTC))
    base = sample_person(0)
    from dataclasses import replace

    out = {}
    for key, name in (("kanji", NAME), ("evil", "山田" + EVIL)):
        person = replace(base, name=name, name_substitutes="0" * len(name))
        path = d / f"{key}.pem"
        path.write_bytes(
            pki.issue_signing(person, label=f"safety-{key}").cert.public_bytes(Encoding.PEM)
        )
        out[key] = path
    return out


def test_cp932_console_text_does_not_raise(certs: dict[str, Path]) -> None:
    res = _jpki("cert", "show", str(certs["kanji"]), PYTHONIOENCODING="cp932")
    assert res.returncode == 0, res.stderr.decode("cp932", "replace")
    text = res.stdout.decode("cp932")  # what was written is valid cp932
    assert "野 花子" in text and "?野 花子" in text  # 𠮷 replaced, the rest intact


def test_cp932_console_json_stays_valid(certs: dict[str, Path]) -> None:
    res = _jpki("cert", "show", str(certs["kanji"]), "--json", PYTHONIOENCODING="cp932")
    assert res.returncode == 0
    raw = res.stdout
    assert raw.isascii()  # escaped, so no character is lost or replaced
    assert json.loads(raw)["basic_info"]["name"] == NAME


def test_utf8_json_keeps_characters(certs: dict[str, Path]) -> None:
    res = _jpki("cert", "show", str(certs["kanji"]), "--json", PYTHONIOENCODING="utf-8")
    assert NAME in res.stdout.decode("utf-8")


def test_control_characters_escaped_in_text(certs: dict[str, Path]) -> None:
    res = _jpki("cert", "show", str(certs["evil"]), PYTHONIOENCODING="utf-8")
    assert res.returncode == 0
    out = res.stdout.decode()
    for c in ("\x1b", "\r", "\x07", "\u202e"):
        assert c not in out
    assert "\\x1b[2K\\x0dVALID" in out
    # JSON keeps the exact value (JSON escaping makes it inert).
    js = _jpki("cert", "show", str(certs["evil"]), "--json").stdout.decode()
    assert "\x1b" not in js and json.loads(js)["basic_info"]["name"].endswith(EVIL)


def test_printable_and_safe_layout() -> None:
    assert printable("a\nb\tc\x1b\x9b\u2066") == "a\\x0ab\\x09c\\x1b\\x9b\\u2066"
    assert safe_layout("line1\n\tline2\x1b[31m\r") == "line1\n\tline2\\x1b[31m\\x0d"
    assert printable("𠮷 ok") == "𠮷 ok"


def test_apdu_log_hides_secret_length() -> None:
    for pw in (b"1234", b"ABCDEF1234567890"):
        cmd = CommandApdu(0x00, 0x20, 0x00, 0x80, pw)
        assert cmd.redacted() == "00 20 00 80 [secret]"
        assert str(len(pw)) not in redact_command(cmd.encode()).replace("00 20 00 80", "")
    # malformed (Lc does not match): still no length
    assert redact_command(bytes([0, 0x20, 0, 0x80, 9]) + b"ABCDEF") == "00200080 [secret]"


def test_vv_shows_no_signing_password_length(tmp_path: Path) -> None:
    profile = tmp_path / "card"
    assert _jpki("sim", "init", str(profile)).returncode == 0
    password = "ABC123DEF"  # nine characters: '9' must not appear as its length
    res = _jpki(
        "-vv",
        "card",
        "read-cert",
        "sign",
        "--sim",
        str(profile),
        "--out",
        str(tmp_path / "s.der"),
        "--pin-env",
        "PW",
        PW=password,
    )
    log = res.stderr.decode()
    assert "00 20 00 81 [secret]" in log or "[secret]" in log, log
    assert password not in log and "9 secret" not in log and "[9" not in log


# --- input ----------------------------------------------------------------------------------


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    d = tmp_path / "trust"
    d.mkdir()
    os.mkfifo(d / "fifo.pem")
    (d / "zero.pem").symlink_to("/dev/zero")
    (d / "dangling.pem").symlink_to(tmp_path / "missing")
    (d / "sub.pem").mkdir()
    pki = TestPki(now=datetime(2026, 6, 1, tzinfo=UTC))
    (d / "ca.pem").write_bytes(pki.sign_ca.cert.public_bytes(Encoding.PEM))
    return d


def test_scan_directory_only_regular_files(hostile_dir: Path) -> None:
    warnings: list[str] = []
    found = scan_directory(hostile_dir, {".pem"}, warn=warnings.append)
    assert [p.name for p in found] == ["ca.pem"]
    joined = "\n".join(warnings)
    assert "fifo.pem: a FIFO" in joined and "zero.pem: a device" in joined
    assert "dangling.pem" in joined and "sub.pem: a directory" in joined


def test_read_regular_file_refuses_fifo_device_and_big(hostile_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="FIFO"):
        read_regular_file(hostile_dir / "fifo.pem")  # returns at once: non-blocking open
    with pytest.raises(InputFileError, match="device"):
        read_regular_file(hostile_dir / "zero.pem")
    big = tmp_path / "big.pem"
    big.write_bytes(b"x" * 101)
    with pytest.raises(InputFileError, match="over the limit"):
        read_regular_file(big, max_bytes=100)
    assert read_regular_file(big, max_bytes=101) == b"x" * 101


def test_trust_directory_with_fifo_and_dev_zero(hostile_dir: Path) -> None:
    from jpki.verify.path import load_trust_anchors

    anchors = load_trust_anchors(hostile_dir)
    assert len(anchors) == 1


def test_cli_named_fifo_is_usage_error(hostile_dir: Path) -> None:
    res = _jpki("cert", "show", str(hostile_dir / "fifo.pem"), timeout=30)
    assert res.returncode == 2 and b"FIFO" in res.stderr
    res = _jpki("cert", "show", str(hostile_dir / "zero.pem"), timeout=30)
    assert res.returncode == 2 and b"device" in res.stderr


# --- one --at parser ------------------------------------------------------------------------


def test_one_time_parser() -> None:
    assert parse_time("2026-06-01T09:00:00+09:00") == datetime(2026, 6, 1, tzinfo=UTC)
    assert parse_time("2026-06-01T00:00:00Z") == datetime(2026, 6, 1, tzinfo=UTC)
    assert parse_time("2026-06-01") == datetime(2026, 6, 1, tzinfo=UTC)
    with pytest.raises(UsageError, match="no timezone"):
        parse_time("2026-06-01T09:00:00")


def test_revocation_at_needs_a_zone_too(certs: dict[str, Path]) -> None:
    # `revocation`/`crl` used to take a zoneless time as UTC while `verify` refused it.
    res = _jpki("crl", "info", str(certs["kanji"]), "--at", "2026-06-01T09:00:00")
    assert res.returncode == 2 and b"no timezone" in res.stderr


# --- errors under --json --------------------------------------------------------------------


def test_error_codes_are_snake_case() -> None:
    assert error_code(WrongPin(0x63C2, 2)) == "wrong_pin"
    assert error_code(NoCardError("x")) == "no_card"
    assert error_code(TransportTimeoutError("x")) == "transport_timeout"
    assert error_code(OSError("x")) == "io_error"


def test_transport_error_under_json() -> None:
    res = _jpki("card", "status", "--bridge", "127.0.0.1:0", "--timeout", "0.3", "--json")
    assert res.returncode == 4, res.stderr
    body = json.loads(res.stdout)
    assert set(body) == {"error"}
    assert body["error"]["code"] == "transport_timeout"
    assert body["error"]["message"]


def test_usage_error_under_json(tmp_path: Path) -> None:
    res = _jpki("cert", "show", str(tmp_path / "missing.pem"), "--json")
    assert res.returncode == 2
    assert json.loads(res.stdout)["error"]["code"] == "input_file"


# --- Ctrl-C ---------------------------------------------------------------------------------


def test_ctrl_c_exits_130() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "jpki", "card", "status", "--bridge", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    assert proc.stderr is not None
    seen = threading.Event()

    def watch() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if b"waiting" in line:
                seen.set()
                return

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert seen.wait(60), "the command never started waiting"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
