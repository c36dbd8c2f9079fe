"""``jpki`` command line: thin wrappers that call the library and print text or JSON."""

from __future__ import annotations

import importlib
import logging

import click

from jpki import __version__

# Each module exposes ``commands: list[click.Command]``; kept apart so command groups stay small.
_MODULES = ("smoke", "card", "sim", "readers", "cert", "verify", "revocation", "conformance")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jpki")
@click.option("-v", "--verbose", count=True, help="-v info, -vv APDU trace (PINs blanked).")
def main(verbose: int) -> None:
    """JPKI (公的個人認証) My Number card client, simulator and verifier."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(name)s: %(message)s")


for _name in _MODULES:
    for _cmd in importlib.import_module(f"jpki.cli.{_name}").commands:
        main.add_command(_cmd)
