"""Shared CLI plumbing: exit codes, output, error mapping, card and secret options."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum, IntEnum
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

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


def dump_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=_json_default)


def emit(data: Any, as_json: bool, text: Callable[[], str] | str | None = None) -> None:
    """Print ``data`` as JSON, or ``text`` (a string or a callable producing one)."""
    if as_json:
        click.echo(dump_json(data))
    elif text is not None:
        click.echo(text() if callable(text) else text)
    else:
        click.echo(dump_json(data))


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
        try:
            return fn(*args, **kwargs)
        except JpkiError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(int(exit_code_for(exc)))
        except OSError as exc:
            click.echo(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
            sys.exit(int(Exit.USAGE))

    return wrapper


def read_input_file(path: str) -> bytes:
    """Read a file named on the command line ('-' for stdin) with a clean error."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


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
