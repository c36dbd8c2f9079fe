"""How APDU bytes reach a chip: ``Connection`` and its implementations."""

from jpki.transport.base import Connection

__all__ = ["Connection"]
