"""Property tests: hostile APDU bytes never crash the chip model nor touch PIN counters."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki.sim import KeyId, ProfileStore, SimulatedCard

SELECTS = [
    bytes.fromhex("00A4040C0AD392F000260100000001"),
    bytes.fromhex("00A4040C0AD3921000310001010408"),
    bytes.fromhex("00A4040C0AD3921000310001010402"),
]
INS = [0xA4, 0xB0, 0x20, 0x24, 0x2A, 0xCA, 0xC0, 0x84, 0x88]
CLA = [0x00, 0x80, 0x01, 0x0C, 0x10, 0xFF]


@pytest.fixture(scope="module")
def card(sim_template: Path, tmp_path_factory: pytest.TempPathFactory) -> SimulatedCard:
    path = Path(shutil.copytree(sim_template, tmp_path_factory.mktemp("props") / "card"))
    return SimulatedCard(path)


def fresh(card: SimulatedCard) -> dict[KeyId, int]:
    state = ProfileStore(card.path).reset_state()
    card.reset()
    return dict(state.tries_left)  # every maximum, except keys blocked from issue (0)


@st.composite
def apdus(draw: st.DrawFn) -> bytes:
    """Mostly well-aimed headers (known CLA/INS, file-ish P1P2) with random bodies."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))
    cla = draw(st.sampled_from(CLA) | st.integers(0, 255))
    ins = draw(st.sampled_from(INS) | st.integers(0, 255))
    p1 = draw(st.sampled_from([0x00, 0x01, 0x02, 0x04, 0x80, 0x81, 0x8A]) | st.integers(0, 255))
    p2 = draw(
        st.sampled_from([0x00, 0x0C, 0x80, 0x91, 0x92, 0x93, 0x97, 0x98, 0x9A, 0x9B])
        | st.integers(0, 255)
    )
    body = draw(
        st.sampled_from([b"", b"\x00", b"\x02\x00\x18", b"\x02\x00\x01", b"\x04" + b"1234"])
        | st.binary(max_size=270)
    )
    return bytes([cla, ins, p1, p2]) + body


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300))
def test_random_bytes_never_raise(card: SimulatedCard, raw: bytes) -> None:
    response = card.process(raw)
    assert isinstance(response, bytes) and len(response) >= 2


@settings(max_examples=150, deadline=None)
@given(start=st.sampled_from(SELECTS), sequence=st.lists(apdus(), min_size=1, max_size=25))
def test_counters_move_only_through_verify(
    card: SimulatedCard, start: bytes, sequence: list[bytes]
) -> None:
    before = fresh(card)
    state_file = card.path / "state.json"
    assert card.process(start) == b"\x90\x00"
    for raw in sequence:
        disk = state_file.read_bytes()
        response = card.process(raw)
        assert len(response) >= 2
        after = {k: card.tries_left(k) for k in KeyId}
        ins = raw[1] if len(raw) > 1 else None
        if ins not in (0x20, 0x24):
            assert after == before, raw.hex()
            assert state_file.read_bytes() == disk  # nothing written
        else:
            for key in KeyId:
                # one try spent, or back to the maximum (good VERIFY / CHANGE), or unchanged
                assert after[key] in (before[key], before[key] - 1, card.profile.max_tries[key])
        assert ProfileStore(card.path).load_state().tries_left == after  # memory == disk
        before = after


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=1, max_size=245))
def test_any_input_up_to_245_bytes_is_signed(card: SimulatedCard, data: bytes) -> None:
    fresh(card)
    card.process(SELECTS[0])
    assert card.process(bytes.fromhex("00200098") + b"\x04" + b"1234") == b"\x90\x00"
    response = card.process(bytes.fromhex("802A0097") + bytes([len(data)]) + data + b"\x00")
    assert response[-2:] == b"\x90\x00" and len(response) == 258
    public = card.profile.private_key("auth").public_key().public_numbers()  # cached parse
    em = pow(int.from_bytes(response[:-2], "big"), public.e, public.n).to_bytes(256, "big")
    assert em.endswith(b"\x00" + data) and em.startswith(b"\x00\x01\xff")
