"""Fault injection: removal, power loss in VERIFY, slow, corrupted and unexpected answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jpki.errors import CardRemovedError, ProfileError
from jpki.sim import (
    Corruption,
    FaultConfig,
    FaultyCard,
    KeyId,
    ProfileStore,
    SimulatedCard,
    open_simulated_card,
)
from jpki.sim.faults import corrupt

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_AUTH_PIN = bytes.fromhex("00A4020C020018")
SELECT_AUTH_CERT = bytes.fromhex("00A4020C02000A")
READ_256 = bytes.fromhex("00B0000000")
GOOD_AUTH = bytes.fromhex("002000800431323334")
BAD_AUTH = bytes.fromhex("002000800439393939")
EMPTY_VERIFY = bytes.fromhex("00200080")


def persisted(profile: Path) -> int:
    """Auth PIN tries on disk; loading also proves the state file is intact."""
    return ProfileStore(profile).load_state().tries_left[KeyId.AUTH_PIN]


def test_card_removed_at_nth_apdu(sim_profile: Path) -> None:
    card = open_simulated_card(sim_profile, faults=FaultConfig(remove_at=3))
    assert card.process(SELECT_JPKI) == b"\x90\x00"
    assert card.process(SELECT_AUTH_PIN) == b"\x90\x00"
    with pytest.raises(CardRemovedError, match="APDU 3"):
        card.process(BAD_AUTH)
    assert persisted(sim_profile) == 3  # the removed command never ran
    with pytest.raises(CardRemovedError):
        card.process(SELECT_JPKI)  # stays removed
    card.reset()  # re-inserted; the fault does not fire again
    assert card.process(SELECT_JPKI) == b"\x90\x00"
    assert card.process(SELECT_AUTH_PIN) == b"\x90\x00"
    assert card.process(EMPTY_VERIFY) == b"\x63\xc3"


@pytest.mark.parametrize("pin", [GOOD_AUTH, BAD_AUTH])
def test_power_loss_during_verify_spends_the_try(sim_profile: Path, pin: bytes) -> None:
    card = open_simulated_card(sim_profile, faults=FaultConfig(power_loss_at_verify=1))
    card.process(SELECT_JPKI)
    card.process(SELECT_AUTH_PIN)
    assert card.process(EMPTY_VERIFY) == b"\x63\xc3"  # status query is not a VERIFY try
    with pytest.raises(CardRemovedError, match="power loss"):
        card.process(pin)
    assert persisted(sim_profile) == 2  # even the right PIN: no free try by tearing
    card.reset()
    card.process(SELECT_JPKI)
    card.process(SELECT_AUTH_PIN)
    assert card.process(EMPTY_VERIFY) == b"\x63\xc2"
    assert card.process(GOOD_AUTH) == b"\x90\x00"  # a later good VERIFY resets it
    assert persisted(sim_profile) == 3


def test_repeated_power_loss_blocks_like_wrong_pins(sim_profile: Path) -> None:
    for expected in (2, 1, 0):
        card = open_simulated_card(sim_profile, faults=FaultConfig(power_loss_at_verify=1))
        card.process(SELECT_JPKI)
        card.process(SELECT_AUTH_PIN)
        with pytest.raises(CardRemovedError):
            card.process(GOOD_AUTH)
        assert persisted(sim_profile) == expected
    card = SimulatedCard(sim_profile)
    card.process(SELECT_JPKI)
    card.process(SELECT_AUTH_PIN)
    assert card.process(GOOD_AUTH) == b"\x69\x84"


def test_slow_answers_sleep_per_apdu(sim_profile: Path) -> None:
    slept: list[float] = []
    card = FaultyCard(
        SimulatedCard(sim_profile),
        FaultConfig(delay=0.5, delay_ins=frozenset({0x20})),
        sleep=slept.append,
    )
    card.process(SELECT_JPKI)
    card.process(SELECT_AUTH_PIN)
    assert slept == []
    assert card.process(EMPTY_VERIFY) == b"\x63\xc3"  # answer unchanged, just late
    assert slept == [0.5]
    every = open_simulated_card(sim_profile, faults=FaultConfig(delay=0.25), sleep=slept.append)
    every.process(SELECT_JPKI)
    assert slept == [0.5, 0.25]


def test_bitflip_changes_exactly_one_bit(sim_profile: Path) -> None:
    clean = SimulatedCard(sim_profile)
    clean.process(SELECT_JPKI)
    clean.process(SELECT_AUTH_CERT)
    want = clean.process(READ_256)
    card = open_simulated_card(sim_profile, faults=FaultConfig(corrupt_at=frozenset({3})))
    card.process(SELECT_JPKI)
    card.process(SELECT_AUTH_CERT)
    got = card.process(READ_256)
    assert len(got) == len(want) and got[-2:] == b"\x90\x00"
    diff = int.from_bytes(got, "big") ^ int.from_bytes(want, "big")
    assert diff.bit_count() == 1
    assert card.process(READ_256) == want  # only the 3rd answer


def test_truncated_answers_by_instruction(sim_profile: Path) -> None:
    card = FaultyCard(
        SimulatedCard(sim_profile),
        FaultConfig(corrupt_ins=frozenset({0xA4}), corruption=Corruption.TRUNCATE),
    )
    assert card.process(SELECT_JPKI) == b"\x90"  # half of 9000: too short to be an answer
    card.process(SELECT_AUTH_PIN)
    assert card.process(EMPTY_VERIFY) == b"\x63\xc3"


def test_corrupt_helper_edge_cases() -> None:
    assert corrupt(b"", Corruption.BITFLIP, 5) == b""
    assert corrupt(b"\x90\x00", Corruption.BITFLIP, 0) == b"\x90\x01"  # SW2 when no data
    assert corrupt(b"\x01\x02\x03\x90\x00", Corruption.TRUNCATE, 0) == b"\x01\x02"


def test_unexpected_status_word_does_not_execute(sim_profile: Path) -> None:
    card = open_simulated_card(sim_profile, faults=FaultConfig(status_words={0x20: 0x6F00}))
    card.process(SELECT_JPKI)
    card.process(SELECT_AUTH_PIN)
    assert card.process(BAD_AUTH) == b"\x6f\x00"
    assert card.process(GOOD_AUTH) == b"\x6f\x00"
    assert persisted(sim_profile) == 3
    assert card.tries_left(KeyId.AUTH_PIN) == 3


def test_faults_json_per_profile_and_session_override(sim_profile: Path) -> None:
    (sim_profile / "faults.json").write_text(
        json.dumps({"remove_at": 1, "status_words": {"A4": "6A82"}, "delay_ins": ["2A"]})
    )
    card = open_simulated_card(sim_profile)
    assert isinstance(card, FaultyCard)
    assert card.faults.remove_at == 1 and card.faults.status_words == {0xA4: 0x6A82}
    with pytest.raises(CardRemovedError):
        card.process(SELECT_JPKI)
    session = open_simulated_card(sim_profile, faults=FaultConfig())
    assert session.process(SELECT_JPKI) == b"\x90\x00"
    assert FaultConfig.from_json(card.faults.to_json()) == card.faults


@pytest.mark.parametrize(
    "content",
    [
        "{",
        "[]",
        '{"remove_at": 0}',
        '{"remove_at": "3"}',
        '{"delay": -1}',
        '{"corruption": "melt"}',
        '{"status_words": {"2A": "6F"}}',
        '{"status_words": {"2A": "ZZZZ"}}',
        '{"unknown_fault": 1}',
        '{"corrupt_at": [true]}',
    ],
)
def test_malformed_faults_json(sim_profile: Path, content: str) -> None:
    (sim_profile / "faults.json").write_text(content)
    with pytest.raises(ProfileError):
        open_simulated_card(sim_profile)


def test_no_faults_by_default(sim_profile: Path) -> None:
    card = open_simulated_card(sim_profile)
    assert isinstance(card, SimulatedCard)  # no wrapper: the bare chip model
    assert not hasattr(card, "faults")
    assert FaultConfig(delay=1).active


def test_the_chip_model_ignores_faults_json(sim_profile: Path) -> None:
    """Faults live in the wrapper: a bare SimulatedCard never misbehaves."""
    (sim_profile / "faults.json").write_text(json.dumps({"remove_at": 1}))
    assert SimulatedCard(sim_profile).process(SELECT_JPKI) == b"\x90\x00"


def test_faulty_card_forwards_the_chip_surface(sim_profile: Path) -> None:
    card = FaultyCard(SimulatedCard(sim_profile), FaultConfig(delay_ins=frozenset({0x2A})))
    assert card.atr == bytes.fromhex("3BE000FF8131FE4514")
    assert card.tries_left(KeyId.AUTH_PIN) == 3 and card.path == sim_profile
    assert card.profile.token_label == "JPKIAPICCTOKEN2"
