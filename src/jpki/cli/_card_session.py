"""Shared by the ``card`` commands and the document-signing commands: opening the card named
by ``card_options``, the PIN prompt for a key, writing an output file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jpki.card import KeyKind
from jpki.card.protocol import CardProtocol
from jpki.cli._common import open_connection
from jpki.errors import UsageError


@contextlib.contextmanager
def open_card(opts: dict[str, Any]) -> Iterator[CardProtocol]:
    """The card named by the ``card_options`` values in ``opts`` (a command's ``**kwargs``)."""
    conn = open_connection(
        sim=opts["sim"], reader=opts["reader"], bridge=opts["bridge"], timeout=opts["timeout"]
    )
    with conn:
        yield CardProtocol(conn)


def pin_prompt(kind: KeyKind) -> str:
    """The prompt asking for the PIN of ``kind``'s key."""
    return "Auth PIN (4 digits)" if kind is KeyKind.AUTH else "Signing password"


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``; a failure is a usage error naming the path."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
