"""``jpki`` command line: thin wrappers that call the library and print text or JSON."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any, NoReturn

import click

from jpki import __version__


def _interrupted() -> NoReturn:
    click.echo("interrupted", err=True)
    sys.exit(130)  # 128 + SIGINT, what a shell reports for a command killed by Ctrl-C


# Command name → module defining it (``commands: list[click.Command]``). Modules load only
# when their command runs (or for --help listings of that command), so ``jpki --version`` and
# ``jpki --help`` stay fast: they import neither numpy nor asn1crypto nor pyHanko.
# To add a command: one line here, and the module's ``commands`` list.
_COMMANDS: dict[str, tuple[str, str]] = {
    "smoke": ("smoke", "end-to-end smoke session against the built-in simulator"),
    "card": ("card", "talk to a card: status, certificates, PIN, signing, card info"),
    "sim": ("sim", "the software card simulator: create, show, reset, serve"),
    "readers": ("readers", "list PC/SC readers, card presence and ATR"),
    "cert": ("cert", "inspect JPKI certificates"),
    "verify": ("verify", "verify signatures, CMS, chains, batches"),
    "crl": ("revocation", "inspect CRLs"),
    "revocation": ("revocation", "revocation checks, the revocation store, monitoring"),
    "conformance": ("conformance", "run the card conformance suite"),
    "serve": ("serve", "the verification service for relying parties; its API keys"),
    "audit": ("serve", "verify and export the service's audit record"),
    "login": ("login", "log in at a jpki serve service with the card"),
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on first use.

    It also sets up what every command shares: console streams that replace what they cannot
    encode instead of raising, and Ctrl-C as exit status 130 (not click's "Aborted!" and 1).
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        from jpki.cli._common import make_streams_safe

        make_streams_safe()
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            _interrupted()
        except click.Abort as exc:
            # click.prompt turns Ctrl-C into Abort; other aborts keep click's handling.
            if isinstance(exc.__context__, KeyboardInterrupt):
                _interrupted()
            raise

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None or cmd_name not in _COMMANDS:
            return cmd
        module = importlib.import_module(f"jpki.cli.{_COMMANDS[cmd_name][0]}")
        found: click.Command
        for found in module.commands:
            if found.name == cmd_name:
                self.add_command(found)
                return found
        raise RuntimeError(f"jpki.cli.{_COMMANDS[cmd_name][0]} does not define {cmd_name}")

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The listing uses the one-line help kept above, so --help imports no command module.
        rows = [(name, _COMMANDS[name][1]) for name in sorted(_COMMANDS)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jpki")
@click.option("-v", "--verbose", count=True, help="-v info, -vv APDU trace (PINs blanked).")
def main(verbose: int) -> None:
    """JPKI (公的個人認証) My Number card client, simulator and verifier."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(name)s: %(message)s")
