"""pyHanko CLI signer plugin for the My Number card: ``pyhanko sign addsig … jpki …``.

Registered under the entry-point group ``pyhanko.cli_plugin.signing`` by the ``pdf`` extra,
like pyhanko-beid-plugin for the Belgian eID. Example::

    pyhanko sign addsig --field Sig1 jpki --reader "Sony" IN.pdf OUT.pdf

pyHanko parses the PDF before calling the plugin; the plugin reads the retry counter (free)
and applies the last-try guard before it asks for the signing password, once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from pyhanko.cli.plugin_api import CLIContext, SigningCommandPlugin, prompt_for_password
from pyhanko.sign.signers.pdf_cms import Signer

from jpki.card.jpki_ap import JpkiAp
from jpki.card.protocol import CardProtocol
from jpki.documents.card import open_signing_key
from jpki.errors import JpkiError, UsageError
from jpki.secret import Secret


class JpkiSigningPlugin(SigningCommandPlugin):
    """``addsig jpki``: sign with the signing key of a My Number card."""

    subcommand_name = "jpki"
    help_summary = "sign with a My Number card (JPKI signing key; PC/SC, vpcd bridge, simulator)"

    def click_options(self) -> list[click.Option]:
        return [
            click.Option(("--reader",), metavar="NAME", help="PC/SC reader name or substring."),
            click.Option(("--bridge",), metavar="HOST:PORT", help="Listen for a vpcd card side."),
            click.Option(
                ("--sim",), metavar="PROFILE", type=click.Path(), help="jpki simulator profile."
            ),
            click.Option(("--timeout",), type=float, default=30.0, show_default=True),
            click.Option(("--pin-env",), metavar="VAR", help="Read the signing password from VAR."),
            click.Option(("--force",), is_flag=True, help="Try even with one try left."),
        ]

    def create_signer(
        self, context: CLIContext, **kwargs: Any
    ) -> contextlib.AbstractContextManager[Signer]:
        return _card_signer(**kwargs)


def _pin(env: str | None) -> Secret:
    if env:
        value = os.environ.get(env)
        if value is None:
            raise UsageError(f"environment variable {env} is not set")
        return Secret(value)
    return Secret(prompt_for_password("Signing password (署名用パスワード)"))


@contextlib.contextmanager
def _card_signer(
    *,
    reader: str | None = None,
    bridge: str | None = None,
    sim: str | None = None,
    timeout: float = 30.0,
    pin_env: str | None = None,
    force: bool = False,
) -> Iterator[Signer]:
    from jpki.cli._common import open_connection

    try:
        conn = open_connection(
            sim=Path(sim) if sim else None, reader=reader, bridge=bridge, timeout=timeout
        )
    except JpkiError as exc:
        raise click.ClickException(str(exc)) from None
    with conn:
        try:
            signer = open_signing_key(
                JpkiAp(CardProtocol(conn)), lambda: _pin(pin_env), force=force
            )
        except JpkiError as exc:
            raise click.ClickException(str(exc)) from None
        yield signer
