"""`jpki cert show FILE [--json]`: what a JPKI certificate is and what it says."""

from __future__ import annotations

from typing import Any

import click

from jpki.cert import BasicInfo, JpkiCertificate
from jpki.cli._common import emit, handle_errors, printable, read_input_file


def _flags_text(flags: tuple[bool, ...], text: str) -> str:
    subst = [
        # zip stops at the shorter: flags that do not match the text are reported apart
        f"{i + 1}:{printable(ch)}"
        for i, (ch, f) in enumerate(zip(text, flags, strict=False))
        if f
    ]
    return f"  (substitute characters at {', '.join(subst)})" if subst else ""


def _basic_lines(info: BasicInfo) -> list[str]:
    lines = [
        "Basic information:",
        f"  Name:        {printable(info.name)}{_flags_text(info.name_substitutes, info.name)}",
        f"  Sex:         {info.sex.name.lower()}",
        f"  Birth date:  {_birth_text(info)}",
        f"  Address:     {printable(info.address)}"
        + _flags_text(info.address_substitutes, info.address),
    ]
    if not info.substitute_flags_consistent:
        lines.append("  (substitute flags do not match the text they describe; kept as written)")
    lines += [f"  Other {oid}: {printable(value)}" for oid, value in info.other.items()]
    return lines


def _birth_text(info: BasicInfo) -> str:
    era = info.birth_era.name.capitalize()
    if info.birth_date is None:
        return f"unknown (as written: {printable(info.birth_date_raw)}, era {era})"
    return f"{info.birth_date.isoformat()} ({era})"


def _colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


def render_text(cert: JpkiCertificate, d: dict[str, Any]) -> str:
    """Readable multi-line description (same facts as the JSON)."""
    kind = d["kind"] + (" (test)" if d["is_test"] else "")
    lines = [
        f"Kind:          {kind}",
        f"Subject:       {printable(d['subject'])}",
        f"Issuer:        {printable(d['issuer'])}",
        f"Serial:        {d['serial_hex']}",
        f"Not before:    {d['not_before']}",
        f"Not after:     {d['not_after']}",
        f"Policies:      {', '.join(d['policies']) or '-'}",
        f"Key usage:     {', '.join(d['key_usage']) or '-'}",
    ]
    if d["extended_key_usage"]:
        lines.append(f"Extended KU:   {', '.join(d['extended_key_usage'])}")
    lines.append(f"SHA-256:       {_colon_hex(cert.fingerprint_sha256)}")
    for dp in cert.crl_distribution_points:
        label = "dirName" if dp.directory_name is not None else "URI"
        lines.append(f"CRL DP:        {label}: {printable(dp.text)}")
    lines += [f"OCSP:          {printable(url)}" for url in d["ocsp_urls"]]
    if cert.authority_key_id is not None:
        lines.append(f"Authority KID: {_colon_hex(cert.authority_key_id)}")
    if cert.subject_key_id is not None:
        lines.append(f"Subject KID:   {_colon_hex(cert.subject_key_id)}")
    if cert.basic_info is not None:
        lines += _basic_lines(cert.basic_info)
    return "\n".join(lines)


@click.group("cert")
def cert_group() -> None:
    """Inspect JPKI certificates."""


@cert_group.command("show")
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (docs/cert.md).")
@handle_errors
def show(file: str, as_json: bool) -> None:
    """Show a certificate (PEM, DER or base64; '-' reads stdin)."""
    cert = JpkiCertificate.load(read_input_file(file))
    d = cert.as_dict()  # reads every field, so a malformed one fails here, before any output
    emit(d, as_json, lambda: render_text(cert, d))


commands: list[click.Command] = [cert_group]
