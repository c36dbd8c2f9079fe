"""Fault injection for the simulated card: removal, power loss in VERIFY, slowness, corruption.

Configured per profile (``faults.json`` in the profile directory) or per session (the
``faults=`` argument of ``SimulatedCard``, which wins). APDUs are counted from 1 per
``SimulatedCard`` instance, across resets; every fault fires at most as configured.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpki.errors import ProfileError


class Corruption(enum.StrEnum):
    """How a corrupted answer is damaged."""

    BITFLIP = "bitflip"  # one bit of the response flipped (data if any, else SW2)
    TRUNCATE = "truncate"  # the response cut to half its length (may leave < 2 bytes)


@dataclass(frozen=True)
class FaultConfig:
    """What goes wrong, and when. The default injects nothing."""

    remove_at: int | None = None  # the n-th APDU raises CardRemovedError (card then gone)
    power_loss_at_verify: int | None = None  # the n-th VERIFY with data: try spent, then removal
    delay: float = 0.0  # seconds to sleep before each answer
    delay_ins: frozenset[int] = frozenset()  # only these INS are slow (empty: every INS)
    corrupt_at: frozenset[int] = frozenset()  # APDU numbers whose answers are corrupted
    corrupt_ins: frozenset[int] = frozenset()  # ...or every answer to these INS
    corruption: Corruption = Corruption.BITFLIP
    status_words: Mapping[int, int] = field(default_factory=dict)  # INS -> SW, not executed

    def __post_init__(self) -> None:
        for name in ("remove_at", "power_loss_at_verify"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ProfileError(f"faults: {name} must be a positive integer")
        if not 0 <= self.delay <= 600:
            raise ProfileError("faults: delay must be between 0 and 600 seconds")
        for ins, sw in self.status_words.items():
            if not (0 <= ins <= 0xFF and 0 <= sw <= 0xFFFF):
                raise ProfileError("faults: status_words maps INS (00-FF) to SW (0000-FFFF)")

    @property
    def active(self) -> bool:
        return self != FaultConfig()

    def to_json(self) -> dict[str, Any]:
        return {
            "remove_at": self.remove_at,
            "power_loss_at_verify": self.power_loss_at_verify,
            "delay": self.delay,
            "delay_ins": [f"{i:02X}" for i in sorted(self.delay_ins)],
            "corrupt_at": sorted(self.corrupt_at),
            "corrupt_ins": [f"{i:02X}" for i in sorted(self.corrupt_ins)],
            "corruption": self.corruption.value,
            "status_words": {f"{k:02X}": f"{v:04X}" for k, v in self.status_words.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> FaultConfig:
        """Parse a ``faults.json`` object; INS and SW are hex strings (``"2A"``, ``"6F00"``)."""
        try:
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            unknown = set(data) - set(cls.__dataclass_fields__)
            if unknown:
                raise ProfileError(f"faults: unknown field(s) {', '.join(sorted(unknown))}")
            return cls(
                remove_at=_opt_int(data.get("remove_at")),
                power_loss_at_verify=_opt_int(data.get("power_loss_at_verify")),
                delay=float(data.get("delay", 0.0)),
                delay_ins=frozenset(_hex(v, 2) for v in data.get("delay_ins", [])),
                corrupt_at=frozenset(_int(v) for v in data.get("corrupt_at", [])),
                corrupt_ins=frozenset(_hex(v, 2) for v in data.get("corrupt_ins", [])),
                corruption=Corruption(data.get("corruption", "bitflip")),
                status_words={
                    _hex(k, 2): _hex(v, 4) for k, v in data.get("status_words", {}).items()
                },
            )
        except ProfileError:
            raise
        except (TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"faults configuration is malformed: {exc}") from None

    @classmethod
    def load(cls, path: Path) -> FaultConfig:
        """``faults.json`` if present, else no faults."""
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"cannot read {path}: {exc}") from None
        try:
            return cls.from_json(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise ProfileError(f"{path} is not valid JSON: {exc}") from None


def _int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"expected an integer, got {v!r}")
    return v


def _opt_int(v: object) -> int | None:
    return None if v is None else _int(v)


def _hex(v: object, digits: int) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if not isinstance(v, str) or len(v) != digits:
        raise ValueError(f"expected {digits} hex digits, got {v!r}")
    return int(v, 16)


def corrupt(response: bytes, how: Corruption, counter: int) -> bytes:
    """Damage ``response`` deterministically (``counter`` picks the bit)."""
    if how is Corruption.TRUNCATE:
        return response[: len(response) // 2]
    i = counter % (len(response) - 2) if len(response) > 2 else len(response) - 1
    if i < 0:
        return response
    b = bytearray(response)
    b[i] ^= 1 << (counter % 8)
    return bytes(b)
