"""The one interface every transport implements."""

from __future__ import annotations

import abc
import logging
from types import TracebackType

from jpki.apdu import redact_command
from jpki.errors import UsageError

log = logging.getLogger("jpki.apdu")


class Connection(abc.ABC):
    """A session with one card: raw APDU bytes in, raw response bytes (data + SW) out."""

    @property
    @abc.abstractmethod
    def atr(self) -> bytes:
        """The card's answer to reset (as the reader reports it)."""

    @abc.abstractmethod
    def _transmit(self, command: bytes) -> bytes:
        """Send one command APDU; return the response including SW1 SW2."""

    def transmit(self, command: bytes) -> bytes:
        """Send one APDU; logs the exchange at DEBUG with PIN data blanked."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug(">> %s", redact_command(command))
        response = self._transmit(command)
        if log.isEnabledFor(logging.DEBUG):
            # Only the status word and size: responses can carry personal data (My Number).
            log.debug("<< [%d bytes] %s", max(0, len(response) - 2), response[-2:].hex().upper())
        return response

    def reset(self) -> bytes:
        """Reset the card (clears its security state); returns the ATR. Optional."""
        raise UsageError(f"{type(self).__name__} cannot reset the card")

    @abc.abstractmethod
    def close(self) -> None:
        """Release the card; idempotent."""

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
