"""In-process connection to a simulated card (no sockets, no pcscd)."""

from __future__ import annotations

from typing import Protocol

from jpki.errors import CardRemovedError
from jpki.transport.base import Connection


class CardModel(Protocol):
    """What a simulated chip offers: ``jpki.sim`` cards satisfy this."""

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


class SimulatedConnection(Connection):
    """Hands APDUs straight to a card model's ``process``."""

    def __init__(self, card: CardModel) -> None:
        self._card: CardModel | None = card
        self._atr = card.reset()

    @property
    def card(self) -> CardModel:
        """The connected chip (``CardRemovedError`` once the connection is closed)."""
        if self._card is None:
            raise CardRemovedError("simulated card connection is closed")
        return self._card

    @property
    def atr(self) -> bytes:
        return self._atr

    def _transmit(self, command: bytes) -> bytes:
        return self.card.process(command)

    def reset(self) -> bytes:
        self._atr = self.card.reset()
        return self._atr

    def close(self) -> None:
        card, self._card = self._card, None
        close = getattr(card, "close", None)
        if callable(close):
            close()
