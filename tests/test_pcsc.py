"""PC/SC transport pieces that need no pcscd: error mapping, reader choice, optional pyscard."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from jpki.cli import main
from jpki.cli._common import Exit, exit_code_for
from jpki.errors import (
    AmbiguousReaderError,
    CardRemovedError,
    NoCardError,
    ReaderNotFoundError,
    SharingViolationError,
    TransportError,
    TransportTimeoutError,
    UsageError,
)
from jpki.transport import pcsc
from jpki.transport.pcsc import PcscCode, ReaderInfo, map_pcsc_error, resolve_reader

READERS = ["Virtual PCD 00 00", "Virtual PCD 00 01", "ACS ACR39U ICC Reader 00 00"]


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (0x8010000C, NoCardError),
        (0x80100069, CardRemovedError),
        (0x80100016, CardRemovedError),
        (0x80100068, CardRemovedError),
        (0x80100009, ReaderNotFoundError),
        (0x80100017, ReaderNotFoundError),
        (0x8010001D, ReaderNotFoundError),
        (0x8010002E, ReaderNotFoundError),
        (0x8010000B, SharingViolationError),
        (0x8010000A, TransportTimeoutError),
        (0x80100066, TransportError),
        (0x80100001, TransportError),
    ],
)
def test_error_mapping(code: int, cls: type[TransportError]) -> None:
    err = map_pcsc_error(code, "testing", "Virtual PCD 00 00")
    assert type(err) is cls
    assert f"0x{code:08X}" in str(err)
    assert exit_code_for(err) == Exit.CARD


@given(st.integers(-(2**31), 2**32 - 1))
def test_any_code_maps_to_a_transport_error(code: int) -> None:
    # pyscard may hand back the code signed or unsigned.
    assert isinstance(map_pcsc_error(code, "testing"), TransportError)


def test_signed_code_is_the_same_error() -> None:
    assert type(map_pcsc_error(0x8010000C - 2**32, "x")) is NoCardError
    assert PcscCode.NO_SMARTCARD == 0x8010000C


def test_resolve_reader() -> None:
    assert resolve_reader("Virtual PCD 00 01", READERS) == "Virtual PCD 00 01"
    assert resolve_reader("acr39", READERS) == "ACS ACR39U ICC Reader 00 00"
    assert resolve_reader("PCD 00 00", READERS) == "Virtual PCD 00 00"
    with pytest.raises(AmbiguousReaderError) as ambiguous:
        resolve_reader("Virtual", READERS)
    assert isinstance(ambiguous.value, UsageError)
    assert exit_code_for(ambiguous.value) == Exit.USAGE
    assert "Virtual PCD 00 00" in str(ambiguous.value)
    with pytest.raises(ReaderNotFoundError, match="readers: 'Virtual PCD 00 00'"):
        resolve_reader("SCR3310", READERS)
    with pytest.raises(ReaderNotFoundError, match="none"):
        resolve_reader("x", [])


def test_reader_info_json() -> None:
    info = ReaderInfo("Virtual PCD 00 00", True, bytes.fromhex("3BE000FF8131FE4514"))
    assert info.to_json() == {
        "name": "Virtual PCD 00 00",
        "card_present": True,
        "atr": "3B E0 00 FF 81 31 FE 45 14",
    }
    assert ReaderInfo("r", False, None).to_json()["atr"] is None


def test_readers_command_output(monkeypatch: pytest.MonkeyPatch) -> None:
    infos = [
        ReaderInfo("Virtual PCD 00 00", True, bytes.fromhex("3BE000FF8131FE4514")),
        ReaderInfo("Virtual PCD 00 01", False, None),
    ]
    monkeypatch.setattr(pcsc, "list_readers", lambda: infos)
    result = CliRunner().invoke(main, ["readers"])
    assert result.exit_code == 0
    assert "Virtual PCD 00 00\tcard 3B E0 00 FF 81 31 FE 45 14" in result.output
    assert "Virtual PCD 00 01\tempty" in result.output


def test_readers_command_maps_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_service() -> list[ReaderInfo]:
        raise map_pcsc_error(PcscCode.NO_SERVICE, "connecting to the PC/SC service")

    monkeypatch.setattr(pcsc, "list_readers", no_service)
    result = CliRunner().invoke(main, ["readers", "--json"])
    assert result.exit_code == Exit.CARD
    assert "start pcscd" in result.output
    assert "Traceback" not in result.output


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_jpki_imports_without_pyscard() -> None:
    # Block pyscard: jpki, its CLI and this module must import; using PC/SC is a usage error.
    code = (
        "import sys; sys.modules['smartcard'] = None\n"
        "import jpki, jpki.cli, jpki.transport.pcsc as p, jpki.transport.vpcd\n"
        "from jpki.errors import UsageError\n"
        "try:\n    p.list_readers()\nexcept UsageError as e:\n    print('usage:', e)\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'jpki[pcsc]'" in proc.stdout


def test_cli_does_not_load_pyscard() -> None:
    proc = _run("import sys, jpki.cli; print('smartcard' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


class _FakeScard:
    """Just enough of pyscard's scard module for one PcscConnection."""

    SCARD_PROTOCOL_T1 = 2
    SCARD_LEAVE_CARD = 0

    def __init__(self, answer: list[int]) -> None:
        self.answer = answer

    def SCardStatus(self, hcard: int) -> tuple[int, str, int, int, list[int]]:
        return 0, "Virtual PCD 00 00", 0, 2, [0x3B, 0x00]

    def SCardTransmit(self, hcard: int, proto: int, cmd: list[int]) -> tuple[int, list[int]]:
        return 0, self.answer

    def SCardDisconnect(self, hcard: int, disposition: int) -> int:
        return 0


class _FakeContext:
    def __init__(self, sc: _FakeScard) -> None:
        self.sc = sc

    def release(self) -> None:
        pass


@pytest.mark.parametrize(("answer", "ok"), [([0x90, 0x00], True), ([], False)])
def test_empty_answer_is_a_removal_not_a_card_answer(answer: list[int], ok: bool) -> None:
    # pcscd's vpcd driver reports a card side that hung up mid-command as success, 0 bytes.
    ctx = _FakeContext(_FakeScard(answer))
    conn = pcsc.PcscConnection(ctx, 1, 2, "Virtual PCD 00 00", 2)  # type: ignore[arg-type]
    if ok:
        assert conn.transmit(b"\x00\xa4\x04\x00") == b"\x90\x00"
    else:
        with pytest.raises(CardRemovedError, match="went away during the command"):
            conn.transmit(b"\x00\xa4\x04\x00")
    conn.close()
