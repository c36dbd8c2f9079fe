"""Software My Number card: chip model, card profiles, fault injection (core imports only).

``open_simulated_card(path)`` opens a profile made by ``jpki.sim.create.create_profile`` (or
``jpki sim init``). See docs/simulator.md for the file layouts and status words.
"""

from __future__ import annotations

from jpki.sim.card import Aid, SimulatedCard, open_simulated_card
from jpki.sim.faults import Corruption, FaultConfig, FaultyCard
from jpki.sim.profile import CardProfile, KeyId, ProfileStore

__all__ = [
    "Aid",
    "CardProfile",
    "Corruption",
    "FaultConfig",
    "FaultyCard",
    "KeyId",
    "ProfileStore",
    "SimulatedCard",
    "open_simulated_card",
]
