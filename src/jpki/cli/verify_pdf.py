"""`jpki verify pdf`: every signature of a PDF (docs/documents.md); added to the ``verify``
group by :mod:`jpki.cli.verify`.

Exit codes: 0 every signature valid and nothing unsigned after the last one, 1 invalid,
2 usage error or unreadable PDF, 3 indeterminate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from jpki.cert import JpkiCertificate
from jpki.cli._common import Exit, emit, handle_errors, parse_time, read_input_file
from jpki.errors import UsageError

_EXIT = {"valid": Exit.OK, "invalid": Exit.INVALID, "indeterminate": Exit.INDETERMINATE}


def trust_anchors(values: Sequence[str]) -> tuple[JpkiCertificate, ...]:
    """``jlis`` (the built-in J-LIS roots) and/or CA files or directories."""
    from jpki.trust import jlis_roots
    from jpki.verify.path import load_trust_anchors

    out: list[JpkiCertificate] = []
    files = [v for v in values if v != "jlis"]
    if "jlis" in values:
        out += jlis_roots("sign")
    if files:
        out += load_trust_anchors(*files)
    return tuple(out)


def crl_der(path: str) -> bytes:
    """A CRL file as DER (PEM is unarmoured); ``UsageError`` if it is not one."""
    from asn1crypto import pem

    raw = read_input_file(path)
    if pem.detect(raw):
        try:
            _kind, _h, raw = pem.unarmor(raw)
        except ValueError as exc:
            raise UsageError(f"{path}: bad PEM: {exc}") from None
    from jpki.errors import JpkiError
    from jpki.revocation.crl import Crl

    try:
        Crl.load(bytes(raw))
    except JpkiError as exc:
        raise UsageError(f"{path}: not a usable CRL: {exc}") from None
    return bytes(raw)


def _text(result: Any) -> str:
    lines = [result.status.value.upper()]
    lines += [f"  - {r}" for r in result.reasons]
    for s in result.signatures:
        lines.append(f"  [{s.field}] {s.kind}: {s.status.value.upper()}")
        if s.subject:
            lines.append(f"      signer: {s.subject} ({s.certificate_kind})")
        if s.basic_info:
            b = s.basic_info
            lines.append(
                f"      基本4情報: {b['name']} / {b['sex']} / {b['birth_date']} / {b['address']}"
            )
        if s.signing_time:
            proof = "proven by timestamp" if s.signing_time_proven else "claimed, NOT proven"
            lines.append(f"      signing time: {s.signing_time.isoformat()} ({proof})")
        lines.append(f"      coverage: {s.coverage}; changed after: {s.changes_after}")
        lines += [f"      - {r}" for r in s.reasons]
    return "\n".join(lines)


@click.command("pdf")
@click.argument("pdf_file", metavar="FILE")
@click.option("--trust", "trust", multiple=True, metavar="jlis|CA",
              help="Trust anchors: 'jlis' (built-in J-LIS roots) and/or CA files or "
                   "directories; repeatable (default: jlis).")  # fmt: skip
@click.option("--tsa-trust", "tsa_trust", multiple=True, metavar="CA",
              help="Trusted CA (file or directory) of timestamp authorities; repeatable. "
                   "Without it timestamps are reported but prove nothing.")  # fmt: skip
@click.option("--crl", "crl_files", multiple=True, metavar="FILE", help="CRL; repeatable.")
@click.option("--store", "store_path", type=click.Path(path_type=Path), metavar="DB",
              help="jpki revocation store.")  # fmt: skip
@click.option("--ocsp", "ocsp_url", metavar="URL", help="OCSP responder to ask.")
@click.option("--soft-fail", is_flag=True,
              help="Accept when revocation status cannot be found "
                   "(default: indeterminate).")  # fmt: skip
@click.option("--at", "at", metavar="TIME", help="Use this as 'now' (ISO 8601).")
@click.option("--allow-unsigned-changes", is_flag=True,
              help="Do not fail when content was added after the last signature.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def pdf_cmd(
    pdf_file: str,
    trust: tuple[str, ...],
    tsa_trust: tuple[str, ...],
    crl_files: tuple[str, ...],
    store_path: Path | None,
    ocsp_url: str | None,
    soft_fail: bool,
    at: str | None,
    allow_unsigned_changes: bool,
    as_json: bool,
) -> None:
    """Verify every signature of a PDF: integrity, coverage, changes, chain, revocation."""
    try:
        from jpki.documents.verify_pdf import RevocationSources, verify_pdf
    except ImportError:
        raise UsageError("PDF verification needs pyHanko: pip install 'jpki[pdf]'") from None
    data = read_input_file(pdf_file)
    anchors = trust_anchors(trust or ("jlis",))
    tsa = trust_anchors(tsa_trust) if tsa_trust else None
    store = None
    if store_path is not None:
        if not store_path.exists():
            raise UsageError(f"no revocation store at {store_path}")
        from jpki.revocation.store import RevocationStore

        store = RevocationStore(store_path)
    if soft_fail and not (crl_files or ocsp_url or store):
        raise UsageError("--soft-fail needs a revocation source (--crl, --store or --ocsp)")
    sources = RevocationSources(
        crls=[crl_der(f) for f in crl_files], ocsp_url=ocsp_url, store=store, soft_fail=soft_fail
    )
    result = verify_pdf(
        data,
        trust_anchors=anchors,
        timestamp_trust=tsa,
        revocation=sources,
        at=parse_time(at) if at else None,
        allow_unsigned_changes=allow_unsigned_changes,
    )
    emit(result.to_dict(), as_json, lambda: _text(result))
    raise SystemExit(int(_EXIT[result.status.value]))
