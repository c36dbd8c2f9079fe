"""Progress lines for long revocation operations (CRL indexing, store loads, monitoring).

Shown on stderr only when it is a terminal (never in a pipe, a log or a test's captured
output) and not silenced; redrawn at most a few times a second on one line.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_INTERVAL = 0.25


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """``update(done)`` with a ``total`` (or None) of ``unit``; ``close()`` ends the line."""

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        unit: str = "entries",
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self._start = time.monotonic()
        self._last = 0.0
        self._shown = False
        self.done = 0

    def line(self, done: int) -> str:
        """The status line for ``done`` items: count, total, rate per second and ETA."""
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = done / elapsed
        text = f"{self.what}: {done:,}"
        if self.total:
            text += f"/{self.total:,}"
        text += f" {self.unit}, {rate:,.0f}/s"
        if self.total and rate > 0 and done < self.total:
            text += f", ETA {_clock((self.total - done) / rate)}"
        return text

    def update(self, done: int, *, total: int | None = None, force: bool = False) -> None:
        """``total``: a new (e.g. estimated) total."""
        self.done = done
        if total is not None:
            self.total = total
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < _INTERVAL:
            return
        self._last = now
        self.stream.write("\r\x1b[K" + self.line(done))
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """Show the final count and end the line (only if a line was shown)."""
        if self.enabled and self._shown:
            self.update(self.done, force=True)
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
