"""Console output that cannot fail or be abused: shared by every command, imported at start-up.

Kept apart from ``_common`` so ``jpki --version`` and ``--help`` load only this and click.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable
from typing import Any

import click


def _utf8(stream: Any) -> bool:
    enc = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
    return enc in ("utf-8", "utf8")


def dump_json(
    data: Any,
    *,
    ascii_only: bool | None = None,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """JSON text; ASCII-escaped unless stdout is UTF-8, so it stays valid in any encoding."""
    if ascii_only is None:
        ascii_only = not _utf8(sys.stdout)
    return json.dumps(data, ensure_ascii=ascii_only, indent=2, default=default)


# C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidirectional
# overrides: in a certificate name, CRL or card field they could move the cursor, repaint
# a verdict ("INVALID" over "VALID") or reorder what a terminal shows.
_BIDI = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE_RE = re.compile("[\x00-\x1f\x7f-\x9f" + _BIDI + "]")
_UNSAFE_LAYOUT_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f" + _BIDI + "]")


def _escape_char(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(value: object) -> str:
    """``str(value)`` with every control character escaped (``\\x1b``, ``\\x0a``, ``\\u202e``).

    For one field taken from a certificate, CRL, card or file in text output: the result
    is one line that cannot move the cursor or fake another line.
    """
    return _UNSAFE_RE.sub(_escape_char, str(value))


def safe_layout(text: str) -> str:
    """Escape control characters in rendered text, keeping its own newlines and tabs."""
    return _UNSAFE_LAYOUT_RE.sub(_escape_char, text)


def echo(text: str = "", *, err: bool = False) -> None:
    """``click.echo`` with control characters escaped (layout newlines and tabs kept)."""
    click.echo(safe_layout(text), err=err)


def make_streams_safe() -> None:
    """Replace what the console encoding cannot show instead of raising (cp932 and 𠮷)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "strict") == "strict":
            # A detached or closed stream has nothing left to protect.
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="replace")
