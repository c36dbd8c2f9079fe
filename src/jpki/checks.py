"""The one check runner behind ``jpki conformance`` and ``jpki smoke``.

A check is a callable returning a detail line; it fails by raising :class:`CheckFailed`
(or any ``JpkiError``), is skipped by raising :class:`CheckSkipped`. A transport error
fails the check and reports the card as gone, so a suite can skip what follows.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from jpki.errors import JpkiError, TransportError


class CheckStatus(enum.StrEnum):
    """Outcome of one check."""

    PASS = "pass"  # noqa: S105 - a check status, not a password
    FAIL = "fail"
    SKIP = "skip"


class CheckFailed(Exception):
    """A check's verdict: it did not hold (the message says what was seen)."""


class CheckSkipped(Exception):
    """A check's verdict: not applicable here (the message says why)."""


@dataclass(frozen=True)
class Outcome:
    """What one check gave: status, detail, and why the card went away (or None)."""

    status: CheckStatus
    detail: str
    card_gone: str | None = None


def run_check(
    fn: Callable[[], str], *, also_failures: tuple[type[BaseException], ...] = ()
) -> Outcome:
    """Run one check; never raises for a verdict (``also_failures`` also count as FAIL)."""
    try:
        return Outcome(CheckStatus.PASS, fn())
    except CheckSkipped as exc:
        return Outcome(CheckStatus.SKIP, str(exc))
    except CheckFailed as exc:
        return Outcome(CheckStatus.FAIL, str(exc) or type(exc).__name__)
    except TransportError as exc:
        return Outcome(CheckStatus.FAIL, f"transport error: {exc}", str(exc))
    except JpkiError as exc:
        return Outcome(CheckStatus.FAIL, f"{type(exc).__name__}: {exc}")
    except also_failures as exc:
        return Outcome(CheckStatus.FAIL, str(exc) or type(exc).__name__)
