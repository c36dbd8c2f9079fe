"""`jpki readers` (PC/SC readers) and `jpki sim serve` (the simulator as a vpcd card side)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

import click

from jpki.cli._common import check_seconds, emit, handle_errors, parse_host_port


@click.command("readers")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def readers(as_json: bool) -> None:
    """List PC/SC readers, whether a card is in each, and its ATR."""
    from jpki.transport.pcsc import list_readers

    infos = list_readers()

    def text() -> str:
        if not infos:
            return "no PC/SC readers"
        return "\n".join(
            f"{i.name}\t{'card ' + (i.atr_hex or '') if i.card_present else 'empty'}" for i in infos
        )

    emit({"readers": [i.to_json() for i in infos]}, as_json, text)


class _Terminated(KeyboardInterrupt):
    """SIGTERM: a requested stop (exit 0), unlike Ctrl-C (exit 130, as every command)."""


def _interrupt_on_term(signum: int, frame: FrameType | None) -> None:
    # `kill PID` should end the server as cleanly as Ctrl-C (the card state is saved on close).
    raise _Terminated


@click.command("serve")
@click.argument("profile", type=click.Path(path_type=Path))
@click.option(
    "--vpcd",
    "vpcd",
    metavar="HOST:PORT",
    default="127.0.0.1:35963",
    show_default=True,
    help="The vpcd reader side to connect to (pcscd's vpcd driver, or `--bridge`).",
)
@click.option(
    "--retry",
    type=float,
    callback=check_seconds,
    default=0.5,
    show_default=True,
    help="Seconds between connection attempts while the reader side is away.",
)
@handle_errors
def serve(profile: Path, vpcd: str, retry: float) -> None:
    """Run the simulated card PROFILE as a vpcd card side until interrupted."""
    from jpki.sim import open_simulated_card
    from jpki.sim.vpcd_card import VpcdCardSide

    host, port = parse_host_port(vpcd)
    card = open_simulated_card(profile)
    side = VpcdCardSide(card, host, port, retry_interval=retry)
    click.echo(f"serving {profile} to vpcd {host}:{port}; Ctrl-C to stop", err=True)
    previous = signal.signal(signal.SIGTERM, _interrupt_on_term)
    interrupted = False
    try:
        side.serve_forever()
    except KeyboardInterrupt as exc:
        interrupted = not isinstance(exc, _Terminated)
        side.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
        card.close()
    click.echo(f"stopped after {side.sessions} connection(s)", err=True)
    if interrupted:
        sys.exit(130)  # Ctrl-C: 128 + SIGINT, after the card state was saved


commands: list[click.Command] = [readers]
