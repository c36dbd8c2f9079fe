"""`jpki card sign-cms` and `jpki card sign-pdf`: sign documents with the card (docs/documents.md).

The commands join the ``card`` group; pyHanko (the ``pdf`` extra) is imported only when one
of them runs. Exit codes: 0 signed, 2 usage / unreadable input / TSA failure, 4 card error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from jpki.cli._card_session import open_card, pin_prompt, write_file
from jpki.cli._common import (
    card_options,
    emit,
    handle_errors,
    pin_options,
    read_input_file,
    read_secret,
)
from jpki.errors import UsageError

_KEYS = click.Choice(["sign", "auth"])


def _needs_pdf_extra() -> None:
    try:
        import pyhanko  # noqa: F401
    except ImportError:
        raise UsageError("document signing needs pyHanko: pip install 'jpki[pdf]'") from None


def _tsa_options(fn: Any) -> Any:
    fn = click.option(
        "--tsa-timeout",
        type=click.FloatRange(0, 600, min_open=True),
        default=10.0,
        show_default=True,
        help="Seconds to wait for the timestamp authority.",
    )(fn)
    fn = click.option(
        "--tsa", "tsa_url", metavar="URL", help="RFC 3161 timestamp authority (B-T level)."
    )(fn)
    return fn


@click.command("sign-cms")
@click.argument("key", type=_KEYS)
@card_options
@click.option("--in", "in_file", metavar="FILE", required=True, help="Data to sign.")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="CMS SignedData (DER) to write, e.g. FILE.p7s.")  # fmt: skip
@click.option("--attached", is_flag=True, help="Embed the data in the CMS (default: detached).")
@_tsa_options
@pin_options(what="the signing password")
@click.option("--force", is_flag=True, help="Try the password even with one try left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def sign_cms_cmd(
    key: str,
    in_file: str,
    out: Path,
    attached: bool,
    tsa_url: str | None,
    tsa_timeout: float,
    pin_env: str | None,
    pin_stdin: bool,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """CMS SignedData over a file, signed on the card with the signing key."""
    _needs_pdf_extra()
    from jpki.card.jpki_ap import JpkiAp, KeyKind
    from jpki.documents.card import require_signing_key
    from jpki.documents.cms import sign_cms

    require_signing_key(key)
    if in_file == "-" and pin_stdin:
        raise UsageError("stdin cannot carry both the data (--in -) and the PIN (--pin-stdin)")
    data = read_input_file(in_file)
    with open_card(kwargs) as proto:
        der = sign_cms(
            JpkiAp(proto),
            data,
            lambda: read_secret(env=pin_env, stdin=pin_stdin, prompt=pin_prompt(KeyKind.SIGNING)),
            attached=attached,
            tsa_url=tsa_url,
            tsa_timeout=tsa_timeout,
            force=force,
        )
    write_file(out, der)
    emit(
        {"out": str(out), "attached": attached, "timestamped": tsa_url is not None},
        as_json,
        f"signed CMS ({'attached' if attached else 'detached'}"
        f"{', timestamped' if tsa_url else ''}) -> {out}",
    )


@click.command("sign-pdf")
@card_options
@click.option("--in", "in_file", metavar="IN.pdf", required=True, help="PDF to sign.")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="OUT.pdf.")
@click.option("--subfilter", type=click.Choice(["pades", "pkcs7"]), default="pades",
              show_default=True,
              help="pades: ETSI.CAdES.detached (PAdES); pkcs7: adbe.pkcs7.detached.")  # fmt: skip
@click.option("--field", metavar="NAME", help="Signature field (default: first empty or new).")
@_tsa_options
@click.option("--embed-revocation", is_flag=True,
              help="B-LT: embed the CRLs that show the certificate good (DSS).")  # fmt: skip
@click.option("--crl", "crl_files", multiple=True, metavar="FILE",
              help="CRL (DER or PEM) to embed with --embed-revocation; repeatable.")  # fmt: skip
@click.option("--trust", "trust", multiple=True, metavar="jlis|CA",
              help="Anchors for --embed-revocation (default: built-in J-LIS roots).")  # fmt: skip
@click.option("--reason", metavar="TEXT", help="/Reason of the signature.")
@click.option("--location", metavar="TEXT", help="/Location of the signature.")
@pin_options(what="the signing password")
@click.option("--force", is_flag=True, help="Try the password even with one try left.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def sign_pdf_cmd(
    in_file: str,
    out: Path,
    subfilter: str,
    field: str | None,
    tsa_url: str | None,
    tsa_timeout: float,
    embed_revocation: bool,
    crl_files: tuple[str, ...],
    trust: tuple[str, ...],
    reason: str | None,
    location: str | None,
    pin_env: str | None,
    pin_stdin: bool,
    force: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Sign a PDF with the card: PAdES B-B, B-T with --tsa, B-LT with --embed-revocation."""
    _needs_pdf_extra()
    from jpki.card.jpki_ap import JpkiAp, KeyKind
    from jpki.cli.verify_pdf import crl_der, trust_anchors
    from jpki.documents.pdf import sign_pdf

    if in_file == "-" and pin_stdin:
        raise UsageError("stdin cannot carry both the PDF (--in -) and the PIN (--pin-stdin)")
    if crl_files and not embed_revocation:
        raise UsageError("--crl is only used with --embed-revocation")
    pdf = read_input_file(in_file)
    crls = [crl_der(f) for f in crl_files]
    anchors = trust_anchors(trust or ("jlis",)) if embed_revocation else ()
    with open_card(kwargs) as proto:
        signed = sign_pdf(
            JpkiAp(proto),
            pdf,
            lambda: read_secret(env=pin_env, stdin=pin_stdin, prompt=pin_prompt(KeyKind.SIGNING)),
            subfilter="pkcs7" if subfilter == "pkcs7" else "pades",
            field=field,
            tsa_url=tsa_url,
            tsa_timeout=tsa_timeout,
            embed_revocation=embed_revocation,
            crls=crls,
            trust_anchors=anchors,
            reason=reason,
            location=location,
            force=force,
        )
    write_file(out, signed)
    level = "B-LT" if embed_revocation else ("B-T" if tsa_url else "B-B")
    if subfilter == "pkcs7":
        level = f"adbe.pkcs7.detached ({level} content)"
    emit({"out": str(out), "level": level}, as_json, f"signed PDF ({level}) -> {out}")


#: Added to the ``card`` group by :mod:`jpki.cli.card`.
commands: list[click.Command] = [sign_cms_cmd, sign_pdf_cmd]
