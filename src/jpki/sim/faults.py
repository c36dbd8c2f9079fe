"""Fault injection for the simulated card: removal, power loss in VERIFY, slowness, corruption.

``FaultyCard`` wraps a chip model (``jpki.sim.SimulatedCard``) from outside: the chip itself
never misbehaves. Configured per profile (``faults.json`` in the profile directory, applied by
``open_simulated_card``) or per session (``FaultyCard(card, FaultConfig(...))``, or the
``faults=`` argument of ``open_simulated_card``, which wins over the file). APDUs are counted
from 1 per ``FaultyCard``, across resets; every fault fires at most as configured.
"""

from __future__ import annotations

import enum
import json
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jpki.errors import CardRemovedError, ProfileError


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
        """True when any fault is set (differs from the default, fault-free config)."""
        return self != FaultConfig()

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``faults.json``): INS bytes and status words in hex."""
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
    top = (1 << (4 * digits)) - 1
    if isinstance(v, int) and not isinstance(v, bool):
        n = v
    elif isinstance(v, str) and len(v) == digits and all(c in string.hexdigits for c in v):
        n = int(v, 16)
    else:  # int() alone would take "-1" or "+A", which no INS / SW is
        raise ValueError(f"expected {digits} hex digits, got {v!r}")
    if not 0 <= n <= top:
        raise ValueError(f"{v!r} is out of range (0 to {top:0{digits}X})")
    return n


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


class Chip(Protocol):
    """What ``FaultyCard`` wraps (``jpki.sim.SimulatedCard`` satisfies it)."""

    @property
    def atr(self) -> bytes:
        """The chip's ATR."""
        ...

    def process(self, command: bytes) -> bytes:
        """One command APDU in, the response (data + SW1 SW2) out."""
        ...

    def reset(self) -> bytes:
        """Power-cycle the chip; returns the ATR."""
        ...

    def close(self) -> None:
        """Release the chip; later commands fail."""
        ...


# A VERIFY the chip must spend a try on but can never accept: longer than any PIN or
# collation value (≤ 16 bytes), so the comparison always fails.
_TORN_VERIFY_DATA = b"\x00" * 17


class FaultyCard:
    """A chip model with faults injected around it: the same surface (``process``, ``reset``,
    ``atr``, ``close``; other attributes are the chip's).

    Power loss during VERIFY is modelled without reaching into the chip: the command is passed
    on with data that can never match, so the chip spends (and persists) the try exactly as for
    a torn real VERIFY, and then the card is gone before any answer.
    """

    def __init__(
        self, card: Chip, faults: FaultConfig, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.card = card
        self.faults = faults
        self._sleep = sleep
        self._lock = threading.RLock()
        self._removed = False
        self.apdu_count = 0
        self.verify_count = 0

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes FaultyCard lacks: profile, path, tries_left, files, …
        return getattr(self.__dict__["card"], name)

    @property
    def atr(self) -> bytes:
        """The wrapped chip's ATR."""
        return self.card.atr

    def reset(self) -> bytes:
        """Re-insert the card (after an injected removal too)."""
        with self._lock:
            atr = self.card.reset()
            self._removed = False
            return atr

    def close(self) -> None:
        """Close the wrapped chip."""
        self.card.close()

    def process(self, command: bytes) -> bytes:
        """Pass ``command`` on with the configured faults (removal, delay, SW, corruption)."""
        with self._lock:
            if self._removed:
                raise CardRemovedError("simulated card is not in the reader")
            self.apdu_count += 1
            n = self.apdu_count
            f = self.faults
            ins = command[1] if len(command) >= 2 else -1
            if f.remove_at == n:
                self._removed = True
                raise CardRemovedError(f"simulated card removed at APDU {n} (fault injection)")
            if f.delay and (not f.delay_ins or ins in f.delay_ins):
                self._sleep(f.delay)
            if ins in f.status_words:
                response = f.status_words[ins].to_bytes(2, "big")
            elif ins == 0x20 and len(command) > 5 and f.power_loss_at_verify is not None:
                response = self._verify_with_power_loss(bytes(command))
            else:
                response = self.card.process(bytes(command))
            if n in f.corrupt_at or ins in f.corrupt_ins:
                response = corrupt(response, f.corruption, n)
            return response

    def _verify_with_power_loss(self, command: bytes) -> bytes:
        self.verify_count += 1
        if self.faults.power_loss_at_verify != self.verify_count:
            return self.card.process(command)
        torn = command[:4] + bytes([len(_TORN_VERIFY_DATA)]) + _TORN_VERIFY_DATA
        self.card.process(torn)  # spends and persists the try; its answer is lost
        self._removed = True
        raise CardRemovedError("simulated power loss during VERIFY (fault injection)")
