"""Shared CLI plumbing: exit codes, output, error mapping, card and secret options."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import Enum, IntEnum
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from jpki._files import MAX_INPUT_FILE, read_regular_file
from jpki.errors import (
    CardError,
    JpkiError,
    PinFormatError,
    PinGuardError,
    TransportError,
    UsageError,
)
from jpki.secret import Secret
from jpki.transport.base import Connection

P = ParamSpec("P")
R = TypeVar("R")


class Exit(IntEnum):
    """Exit codes, the same for every command (docs/cli.md)."""

    OK = 0  # success; valid; good
    INVALID = 1  # invalid signature/chain; revoked; a check failed
    USAGE = 2  # bad arguments, or an input file that is unreadable or malformed
    INDETERMINATE = 3  # cannot decide (e.g. revocation unknown)
    CARD = 4  # card or transport error (no card, removed, wrong PIN, blocked, bad answer)
    INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report 128 + 2


def _json_default(o: object) -> object:
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, bytes):
        return o.hex()
    if isinstance(o, Enum):
        return o.value
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _utf8(stream: Any) -> bool:
    enc = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
    return enc in ("utf-8", "utf8")


def dump_json(data: Any, *, ascii_only: bool | None = None) -> str:
    """JSON text; ASCII-escaped unless stdout is UTF-8, so it stays valid in any encoding."""
    if ascii_only is None:
        ascii_only = not _utf8(sys.stdout)
    return json.dumps(data, ensure_ascii=ascii_only, indent=2, default=_json_default)


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


def emit(data: Any, as_json: bool, text: Callable[[], str] | str | None = None) -> None:
    """Print ``data`` as JSON, or ``text`` (a string or a callable producing one).

    Text is passed through ``safe_layout``: renderers should still wrap each field from
    outside in ``printable`` so an embedded newline cannot fake a line.
    """
    if as_json or text is None:
        click.echo(dump_json(data))
    else:
        echo(text() if callable(text) else text)


#: ``{"error": {"code": ...}}`` codes for exceptions with a fixed meaning; other errors use
#: their class name in snake_case (``WrongPin`` → ``wrong_pin``, ``NoCardError`` → ``no_card``).
def error_code(exc: BaseException) -> str:
    """A stable snake_case code for an error, for ``{"error": {"code", "message"}}``."""
    if isinstance(exc, OSError):
        return "io_error"
    name = type(exc).__name__
    if name.endswith("Error") and name != "Error":
        name = name[: -len("Error")]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def error_json(exc: BaseException, message: str) -> dict[str, Any]:
    """The JSON body every command prints on stdout for an error under ``--json``."""
    body: dict[str, Any] = {"code": error_code(exc), "message": message}
    retries = getattr(exc, "retries_left", None)
    if isinstance(retries, int):
        body["retries_left"] = retries
    sw = getattr(exc, "sw", None)
    if isinstance(sw, int):
        body["sw"] = f"{sw:04X}"
    return {"error": body}


def fail(exc: BaseException, message: str, code: int, *, as_json: bool) -> None:
    """Report an error (stderr line; JSON on stdout under ``--json``) and exit ``code``."""
    echo(f"error: {printable(message)}", err=True)
    if as_json:
        click.echo(dump_json(error_json(exc, message)))
    sys.exit(code)


def parse_time(value: str | None) -> datetime:
    """The one ``--at`` parser: ISO 8601 with a zone (``Z`` or ``+09:00``); None is now.

    A time of day without a zone is refused everywhere (a user in Japan typing local time
    would otherwise be nine hours off); a date alone (``2026-06-01``) means 00:00 UTC.
    """
    if value is None:
        return datetime.now(UTC)
    text = value.strip()
    zulu = text.endswith(("Z", "z"))
    if zulu:
        text = text[:-1]
    try:
        if len(text) == 10:  # a date alone (with or without Z): midnight UTC
            t = datetime.fromisoformat(text).replace(tzinfo=UTC)
        else:
            t = datetime.fromisoformat(text + ("+00:00" if zulu else ""))
    except ValueError:
        raise UsageError(
            f"bad time {value!r}: use ISO 8601 with a zone, e.g. 2026-06-01T09:00:00+09:00"
        ) from None
    if t.tzinfo is None:
        raise UsageError(f"time {value!r} has no timezone: add Z or an offset like +09:00")
    # Near year 1 or 9999 any skew or lifetime added later overflows: refuse it here.
    try:
        in_range = _EARLIEST <= t <= _LATEST
    except OverflowError:
        in_range = False
    if not in_range:
        raise UsageError(f"time {value!r} is out of range (1900 to 9000)")
    return t


_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def exit_code_for(exc: JpkiError) -> Exit:
    if isinstance(exc, PinFormatError | PinGuardError):
        return Exit.CARD
    if isinstance(exc, UsageError):
        return Exit.USAGE
    if isinstance(exc, TransportError | CardError):
        return Exit.CARD
    return Exit.USAGE


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a ``JpkiError`` into one line on stderr and its exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("as_json"))
        try:
            return fn(*args, **kwargs)
        except JpkiError as exc:
            fail(exc, str(exc), int(exit_code_for(exc)), as_json=as_json)
            raise  # unreachable: fail exits
        except OSError as exc:
            message = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
            fail(exc, message, int(Exit.USAGE), as_json=as_json)
            raise

    return wrapper


def read_input_file(path: str, *, max_bytes: int = MAX_INPUT_FILE) -> bytes:
    """Read a file named on the command line ('-' for stdin) with a clean error.

    Only a regular file of at most ``max_bytes`` (a FIFO or ``/dev/zero`` is refused).
    """
    if path == "-":
        data = sys.stdin.buffer.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UsageError(f"standard input is over the limit of {max_bytes} bytes")
        return data
    return read_regular_file(path, max_bytes=max_bytes)


def read_secret(*, env: str | None, stdin: bool, prompt: str, upper: bool = False) -> Secret:
    """A PIN from an environment variable named by the user, stdin, or a hidden prompt."""
    if env and stdin:
        raise UsageError("give the PIN either by --*-env or by --*-stdin, not both")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise UsageError(f"environment variable {env} is not set")
    elif stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise UsageError(f"{prompt}: no terminal to prompt on; use an -env or -stdin option")
        value = click.prompt(prompt, hide_input=True, show_default=False)
    return Secret(value.upper() if upper else value)


#: Upper bound for --timeout/--retry seconds (a day).
MAX_SECONDS = 86400.0


def check_seconds(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Click callback: a positive, finite number of seconds, at most ``MAX_SECONDS``.

    Plain ``float`` let nan/inf through to ``socket.settimeout`` (a traceback) and negative
    values into wait loops (a busy spin).
    """
    if not 0 < value <= MAX_SECONDS:
        raise click.BadParameter(f"{value:g} is not a number of seconds in (0, {MAX_SECONDS:g}]")
    return value


def pin_options(
    prefix: str = "pin", what: str = "the PIN"
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``--pin-env VAR`` / ``--pin-stdin`` (never the PIN itself as an argument)."""

    def deco(fn: Callable[P, R]) -> Callable[P, R]:
        fn = click.option(
            f"--{prefix}-stdin", is_flag=True, help=f"Read {what} from the first line of stdin."
        )(fn)
        fn = click.option(
            f"--{prefix}-env", metavar="VAR", help=f"Read {what} from environment variable VAR."
        )(fn)
        return fn

    return deco


def card_options(fn: Callable[P, R]) -> Callable[P, R]:
    """--sim PROFILE / --reader NAME / --bridge HOST:PORT (exactly one; --sim if none given)."""
    fn = click.option(
        "--timeout",
        type=float,
        callback=check_seconds,
        default=30.0,
        show_default=True,
        help="Seconds to wait for a card (reader or bridge) and for each answer.",
    )(fn)
    fn = click.option(
        "--bridge",
        metavar="HOST:PORT",
        help="Listen for a vpcd card side (phone relay or `jpki sim serve`).",
    )(fn)
    fn = click.option("--reader", metavar="NAME", help="PC/SC reader name or unique substring.")(fn)
    fn = click.option(
        "--sim",
        "sim",
        metavar="PROFILE",
        type=click.Path(path_type=Path),
        help="Simulator card profile directory (see `jpki sim init`).",
    )(fn)
    return fn


def parse_host_port(value: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = default_host, value
    host = host.strip("[]") or default_host
    try:
        p = int(port)
    except ValueError:
        raise UsageError(f"bad HOST:PORT {value!r}") from None
    if not 0 <= p <= 65535:
        raise UsageError(f"port out of range in {value!r}")
    return host, p


def open_connection(
    *, sim: Path | None, reader: str | None, bridge: str | None, timeout: float = 30.0
) -> Connection:
    """Open the one card source the user named."""
    given = [name for name, v in (("--sim", sim), ("--reader", reader), ("--bridge", bridge)) if v]
    if len(given) > 1:
        raise UsageError(f"give only one of {', '.join(given)}")
    if reader:
        from jpki.transport.pcsc import PcscConnection

        return PcscConnection.connect(reader, timeout=timeout)
    if bridge:
        from jpki.transport.vpcd import VpcdListener

        host, port = parse_host_port(bridge)
        with VpcdListener(host, port, timeout=timeout) as listener:
            click.echo(f"waiting {timeout:g} s for a vpcd card side on {host}:{port}", err=True)
            return listener.accept_connection(timeout=timeout)
    if sim is None:
        raise UsageError("name a card: --sim PROFILE, --reader NAME or --bridge HOST:PORT")
    from jpki.sim import open_simulated_card
    from jpki.transport.simulated import SimulatedConnection

    return SimulatedConnection(open_simulated_card(sim))
