"""`jpki login URL`: the card side of a login against a `jpki serve` service.

URL is either the service (``http://host:port``: a challenge is asked for with the API key)
or a login-page link (``…/login/c/ID``: the page's challenge). The exchange itself is
:func:`jpki.service_client.login`; this command names the card, the PIN source and the key.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from jpki.cli._common import (
    Exit,
    card_options,
    emit,
    handle_errors,
    open_connection,
    pin_options,
    read_secret,
)
from jpki.cli._console import printable
from jpki.errors import UsageError
from jpki.secret import Secret


@click.command("login")
@click.argument("url")
@card_options
@pin_options("pin", "the user-authentication PIN (4 digits)")
@click.option("--api-key-env", metavar="VAR", help="Environment variable holding the API key.")
@click.option("--force", is_flag=True, help="Try the PIN even when only one try is left.")
@click.option("--json", "as_json", is_flag=True, help="Print the service's answer as JSON.")
@handle_errors
def login_cmd(
    url: str,
    api_key_env: str | None,
    pin_env: str | None,
    pin_stdin: bool,
    force: bool,
    as_json: bool,
    sim: Path | None,
    reader: str | None,
    bridge: str | None,
    timeout: float,
) -> None:
    """Log in at URL with the card's auth key; exit 0 valid, 1 invalid, 3 indeterminate."""
    from jpki.service_client import LoginStatus, check_url, login

    check_url(url)  # a bad URL is a usage error before any card is opened
    key = None
    if api_key_env:
        value = os.environ.get(api_key_env)
        if value is None:
            raise UsageError(f"environment variable {api_key_env} is not set")
        if not value.isascii():
            raise UsageError(f"environment variable {api_key_env} does not hold an API key")
        key = Secret(value)

    def pin() -> Secret:
        return read_secret(env=pin_env, stdin=pin_stdin, prompt="user-authentication PIN")

    with open_connection(sim=sim, reader=reader, bridge=bridge, timeout=timeout) as conn:
        result = login(url, conn, pin, api_key=key, force=force, timeout=timeout)

    def text() -> str:
        lines = [f"login {result.status}"]
        if result.account_key:
            lines.append(f"account key  {printable(result.account_key)}")
        lines += [f"  - {printable(r)}" for r in result.reasons]
        if result.record_seq is not None:
            lines.append(f"audit record #{result.record_seq} {printable(result.record_hash)}")
        return "\n".join(lines)

    emit(dict(result.answer), as_json, text)
    code = {LoginStatus.VALID: Exit.OK, LoginStatus.INVALID: Exit.INVALID}
    raise SystemExit(int(code.get(result.status, Exit.INDETERMINATE)))


commands: list[click.Command] = [login_cmd]
