"""Replay the committed APDU transcripts (vectors/sim/transcripts.json) against the simulator."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from jpki.sim import ProfileStore, SimulatedCard

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
TRANSCRIPTS: dict[str, Any] = json.loads((VECTORS / "sim" / "transcripts.json").read_text())


@pytest.mark.parametrize("name", sorted(TRANSCRIPTS["scenarios"]))
def test_transcript_replays_exactly(sim_profile: Path, name: str) -> None:
    card = SimulatedCard(sim_profile)
    assert card.reset().hex().upper() == TRANSCRIPTS["atr"]
    for i, (command, response) in enumerate(TRANSCRIPTS["scenarios"][name]):
        got = card.process(bytes.fromhex(command)).hex().upper()
        assert got == response, f"{name} step {i}: {command}"
    ProfileStore(sim_profile).reset_state()


def test_generator_reproduces_the_committed_file() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_sim_transcripts", VECTORS / "make_sim_transcripts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == (VECTORS / "sim" / "transcripts.json").read_bytes()
