"""Malformed input from outside ends in a ``JpkiError`` subclass, never another exception.

Covers what the per-module tests do not: JPKI AP token info and certificate reads against a
card serving arbitrary file contents (bogus DER headers included) and arbitrary status words,
a valid profile.json with one field damaged (loaded, then used by the card and `sim show`),
faults.json values, and a vpcd peer that sends arbitrary bytes (both directions).
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jpki.card import CertSlot, JpkiAp, KeyKind
from jpki.card.constants import JpkiFile
from jpki.cli import main
from jpki.cli.sim import describe
from jpki.errors import JpkiError, ProfileError
from jpki.sim import FaultConfig, ProfileStore, SimulatedCard, open_simulated_card
from jpki.sim.vpcd_card import VpcdCardSide
from jpki.transport.simulated import SimulatedConnection
from jpki.transport.vpcd import VpcdConnection, read_frame
from test_card_protocol import FileCard, Scripted, h

FIXTURE_OK = [HealthCheck.function_scoped_fixture]

# --- JPKI AP responses ----------------------------------------------------------------------

# DER-ish headers: every tag/length form, lengths that lie, indefinite and oversized forms.
der_headers = st.one_of(
    st.binary(max_size=6),
    st.builds(
        lambda tag, form, n: bytes([tag, 0x80 | form]) + (n % 256**form).to_bytes(form, "big"),
        st.integers(0, 255),
        st.integers(0, 8),
        st.integers(0, 2**32 - 1),
    ),
    st.builds(lambda tag, n: bytes([tag, n]), st.integers(0, 255), st.integers(0, 127)),
)
file_contents = st.one_of(
    st.binary(max_size=600),
    st.builds(lambda head, body: head + body, der_headers, st.binary(max_size=400)),
)


@settings(max_examples=300, deadline=None)
@given(content=file_contents, limit=st.sampled_from([256, 100, 7]), chain=st.sampled_from([0, 50]))
def test_certificate_reads_of_any_content_raise_only_jpki_errors(
    content: bytes, limit: int, chain: int
) -> None:
    card = FileCard({int(JpkiFile.AUTH_CERT): content}, limit=limit, chain=chain)
    jpki = JpkiAp(card)
    try:
        der = jpki.read_certificate(CertSlot.AUTH)
    except JpkiError:
        return
    # What it returns is one whole DER object taken from the file.
    assert content.startswith(der) and len(der) >= 2


@settings(max_examples=300, deadline=None)
@given(content=st.binary(max_size=80))
def test_token_info_of_any_content_raises_only_jpki_errors(content: bytes) -> None:
    card = FileCard({int(JpkiFile.TOKEN_INFO): content})
    try:
        info = JpkiAp(card).token_info()
    except JpkiError:
        return
    assert info.label.isascii() and len(info.label) <= 32


@settings(max_examples=300, deadline=None)
@given(answers=st.lists(st.binary(max_size=40), min_size=1, max_size=12))
def test_any_answers_to_a_session_raise_only_jpki_errors(answers: list[bytes]) -> None:
    """Whatever a broken card answers (short, no SW, odd SWs), the client stays clean."""
    pairs: list[tuple[bytes | None, bytes]] = [(None, a) for a in answers]
    pairs += [(None, h("6F00"))] * 40  # then a card that only says "no diagnosis"
    conn = Scripted(*pairs)
    with contextlib.suppress(JpkiError):
        jpki = JpkiAp(conn)
        jpki.token_info()
        jpki.pin_status(KeyKind.AUTH)
        jpki.read_certificate(CertSlot.AUTH_CA)
        jpki.sign(KeyKind.AUTH, b"\x30" * 51)


# --- profile.json damaged in one place --------------------------------------------------------


def _leaves(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(obj, dict):
        return [path] + [p for k, v in obj.items() for p in _leaves(v, (*path, k))]
    if isinstance(obj, list):
        return [path] + [p for i, v in enumerate(obj) for p in _leaves(v, (*path, i))]
    return [path]


BAD_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(
        ["", "00", "3B", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]
    ),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _exercise(profile: Path) -> None:
    """Load the profile and use it as `sim show`, `card status` and a client session would."""
    store = ProfileStore(profile)
    describe(store)
    card = SimulatedCard(profile, durable=False)
    with SimulatedConnection(card) as conn:
        jpki = JpkiAp(conn)
        jpki.token_info()
        jpki.pin_status(KeyKind.AUTH)
        for slot in (CertSlot.AUTH, CertSlot.AUTH_CA, CertSlot.SIGNING_CA):
            jpki.read_certificate(slot)


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURE_OK)
@given(data=st.data())
def test_profile_json_damaged_anywhere_loads_or_raises_profile_error(
    sim_template: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    original = json.loads((sim_template / "profile.json").read_text(encoding="utf-8"))
    profile = tmp_path_factory.mktemp("damaged")
    for name in ("profile.json", "state.json"):
        (profile / name).write_bytes((sim_template / name).read_bytes())
    damaged = copy.deepcopy(original)
    path = data.draw(st.sampled_from(_leaves(original)[1:]))
    parent = damaged
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):
        parent[path[-1]] = data.draw(junk)
    elif isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    (profile / "profile.json").write_text(json.dumps(damaged), encoding="utf-8")
    try:
        _exercise(profile)
    except ProfileError:
        pass
    except JpkiError:
        pass  # e.g. a card error from a certificate the profile holds but cannot be read


def test_sim_show_and_card_status_on_a_damaged_profile_exit_2(sim_profile: Path) -> None:
    data = json.loads((sim_profile / "profile.json").read_text(encoding="utf-8"))
    data["certificates"]["auth"] = BAD_PEM
    (sim_profile / "profile.json").write_text(json.dumps(data), encoding="utf-8")
    for argv in (["sim", "show", str(sim_profile)], ["card", "status", "--sim", str(sim_profile)]):
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 2, (argv, result.output)
        assert isinstance(result.exception, SystemExit)
        assert "error:" in result.output


# --- faults.json ------------------------------------------------------------------------------

fault_values = st.one_of(
    junk, st.lists(junk, max_size=3), st.dictionaries(st.text(max_size=3), junk)
)


@settings(max_examples=300, deadline=None)
@given(
    obj=st.one_of(
        junk,
        st.dictionaries(
            st.sampled_from(
                [*FaultConfig.__dataclass_fields__, "other"],
            ),
            fault_values,
            max_size=4,
        ),
    )
)
def test_faults_json_of_any_shape_parses_or_raises_profile_error(obj: object) -> None:
    try:
        config = FaultConfig.from_json(obj)
    except ProfileError:
        return
    assert FaultConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "obj",
    [
        {"delay_ins": [-16]},  # found by the property above: printed as "-10", unreadable
        {"corrupt_ins": [256]},
        {"delay_ins": ["-1"]},
        {"status_words": {"2A": 0x10000}},
    ],
)
def test_fault_ins_and_sw_out_of_range_are_refused(obj: object) -> None:
    with pytest.raises(ProfileError, match="malformed"):
        FaultConfig.from_json(obj)


# --- vpcd: arbitrary bytes from the peer ------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(stream=st.binary(max_size=80))
def test_reader_side_frames_from_any_stream_raise_only_jpki_errors(stream: bytes) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(stream)
        a.shutdown(socket.SHUT_WR)
        b.settimeout(2)
        with contextlib.suppress(JpkiError):
            while True:
                frame = read_frame(b)
                assert frame


@settings(max_examples=200, deadline=None)
@given(stream=st.binary(max_size=80))
def test_vpcd_connection_to_a_garbage_card_side_raises_only_jpki_errors(stream: bytes) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(stream)
        a.shutdown(socket.SHUT_WR)
        with contextlib.suppress(JpkiError):
            conn = VpcdConnection(b, apdu_timeout=2.0)
            conn.transmit(h("00A4040C0AD392F000260100000001"))
            conn.transmit(h("00B0000004"))


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_OK)
@given(message=st.binary(min_size=1, max_size=300))
def test_card_side_answers_any_message(sim_profile: Path, message: bytes) -> None:
    """The simulator's card side answers every frame with an R-APDU (or nothing for control)."""
    card = open_simulated_card(sim_profile, durable=False, faults=FaultConfig())
    side = VpcdCardSide(card)
    try:
        reply = side.handle(message)
    except JpkiError:
        pytest.fail("a well-formed frame must get an answer, not an exception")
    if len(message) == 1:
        assert reply is None or reply == card.atr
    else:
        assert reply is not None and 2 <= len(reply) <= 0xFFFF
    card.close()
