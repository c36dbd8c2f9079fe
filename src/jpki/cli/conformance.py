"""`jpki conformance`: the checks any card, simulator or bridge must pass (jpki.conformance)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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
from jpki.conformance import CheckStatus, ConformanceReport, run_conformance
from jpki.errors import UsageError
from jpki.secret import Secret
from jpki.trust.cvca import load_cvca_keys

_MARK = {CheckStatus.PASS: "PASS", CheckStatus.FAIL: "FAIL", CheckStatus.SKIP: "skip"}


def _text(report: ConformanceReport, transcript: bool) -> str:
    lines = []
    for c in report.checks:
        lines.append(f"{_MARK[c.status]}  {c.name:<30} {c.detail}")
        if transcript or c.status is CheckStatus.FAIL:
            lines.extend(f"        {line}" for e in c.transcript for line in str(e).splitlines())
    lines.append(
        f"{report.count(CheckStatus.PASS)} passed, {report.count(CheckStatus.FAIL)} failed, "
        f"{report.count(CheckStatus.SKIP)} skipped (ATR {report.atr.hex().upper() or 'none'})"
    )
    if report.aborted:
        lines.append(f"aborted: the card went away ({report.aborted})")
    return "\n".join(lines)


@click.command("conformance")
@card_options
@click.option(
    "--with-pin",
    is_flag=True,
    help="Also run the PIN checks: one auth PIN VERIFY and a sign/verify round trip "
    "(skipped unless at least 2 tries are left). Without it no PIN try is ever spent.",
)
@pin_options(what="the auth PIN")
@click.option(
    "--sign-pin-env",
    metavar="VAR",
    help="With --with-pin: signing password from VAR; adds the signing key checks.",
)
@click.option(
    "--cvca-keys",
    "cvca_keys",
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Also trust these CVCA keys (index.json + PEM) for the EF 0004 CVC checks.",
)
@click.option("--transcript", is_flag=True, help="Text output: show every check's APDUs.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@handle_errors
def conformance_cmd(
    with_pin: bool,
    pin_env: str | None,
    pin_stdin: bool,
    sign_pin_env: str | None,
    cvca_keys: Path | None,
    transcript: bool,
    as_json: bool,
    **card: Any,
) -> None:
    """Check that a card (--reader), bridge (--bridge) or simulator (--sim) behaves as a
    My Number card must: applications, files, certificates, PIN counters, status words.

    Exit 0 if no check failed, 1 if any failed, 4 if the card could not be reached or went away.
    """
    pin: Secret | None = None
    sign_pin: Secret | None = None
    if with_pin:
        pin = read_secret(env=pin_env, stdin=pin_stdin, prompt="Auth PIN (4 digits)")
        if sign_pin_env:
            sign_pin = read_secret(env=sign_pin_env, stdin=False, prompt="Signing password")
    elif pin_env or pin_stdin or sign_pin_env:
        raise UsageError("PIN options need --with-pin")
    extra = load_cvca_keys(cvca_keys) if cvca_keys is not None else ()
    conn = open_connection(
        sim=card["sim"], reader=card["reader"], bridge=card["bridge"], timeout=card["timeout"]
    )
    with conn:
        report = run_conformance(
            conn, with_pin=with_pin, pin=pin, sign_pin=sign_pin, cvca_keys=extra
        )
    emit(report.as_dict(), as_json, lambda: _text(report, transcript))
    if report.aborted:
        sys.exit(int(Exit.CARD))
    if report.failed:
        sys.exit(int(Exit.INVALID))


commands: list[click.Command] = [conformance_cmd]
