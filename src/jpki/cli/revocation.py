"""`jpki crl info` and `jpki revocation check|store load|monitor` (docs/revocation.md)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from cryptography import x509

from jpki.cert import JpkiCertificate
from jpki.cli._common import Exit, emit, handle_errors, parse_time, read_input_file
from jpki.errors import CrlError, UsageError
from jpki.revocation.crl import Crl
from jpki.revocation.policy import (
    RevocationPolicy,
    RevocationResult,
    RevocationStatus,
    check_revocation,
    issued_by,
)

_F = TypeVar("_F", bound=Callable[..., Any])


def _issuer_option(help: str, *, required: bool = False) -> Callable[[_F], _F]:
    """``--issuer CA`` (repeatable: CA generations share a DN) into ``issuer_paths``."""
    return click.option(
        "--issuer", "issuer_paths", multiple=True, required=required, metavar="CA", help=help
    )


def _load_certs(paths: tuple[str, ...]) -> list[JpkiCertificate]:
    return [JpkiCertificate.load(read_input_file(p)) for p in paths]


def load_crl_file(path: str) -> Crl:
    """A CRL named on the command line; big files are memory-mapped, '-' reads stdin."""
    return Crl.load(read_input_file(path)) if path == "-" else Crl.from_file(path)


def _pick_issuer(cert: JpkiCertificate, issuers: list[JpkiCertificate]) -> JpkiCertificate:
    """The --issuer whose key signed ``cert`` (CA generations share one DN)."""
    for ca in issuers:
        if issued_by(cert.certificate, ca.certificate):
            return ca
    raise UsageError("no --issuer certificate signed this certificate")


# --- crl ---------------------------------------------------------------------------------------


@click.group("crl")
def crl_group() -> None:
    """Inspect certificate revocation lists."""


def crl_info_dict(crl: Crl, issuers: list[JpkiCertificate], at: datetime) -> dict[str, Any]:
    signature = "unchecked"
    signed_by = None
    if issuers:
        try:
            signer = crl.verify(issuers)
            signature = "valid"
            signed_by = signer.subject.rfc4514_string()
        except CrlError:
            signature = "invalid"
    kind, hash_cls = crl.signature_algorithm
    return {
        "issuer": crl.issuer.rfc4514_string(),
        "entries": len(crl),
        "this_update": crl.this_update,
        "next_update": crl.next_update,
        "number": crl.number,
        "delta_base_number": crl.base_number,
        "distribution_point": [n.rfc4514_string() for n in crl.idp_names],
        "authority_key_id": crl.authority_key_id,
        "signature_algorithm": f"{kind}-{hash_cls.name}",
        "signature": signature,
        "signed_by": signed_by,
        "fresh": crl.is_fresh(at),
        "size": crl.size,
    }


def _crl_text(d: dict[str, Any]) -> str:
    def t(v: object) -> str:
        return v.isoformat() if isinstance(v, datetime) else "-" if v is None else str(v)

    lines = [
        f"Issuer:       {d['issuer']}",
        f"Entries:      {d['entries']}",
        f"This update:  {t(d['this_update'])}",
        f"Next update:  {t(d['next_update'])}" + ("" if d["fresh"] else "  (not fresh)"),
        f"CRL number:   {t(d['number'])}",
    ]
    if d["delta_base_number"] is not None:
        lines.append(f"Delta of:     CRL number {d['delta_base_number']}")
    lines += [f"Scope (IDP):  {n}" for n in d["distribution_point"]]
    sig = d["signature"] + (f" (by {d['signed_by']})" if d["signed_by"] else "")
    lines.append(f"Signature:    {d['signature_algorithm']}: {sig}")
    return "\n".join(lines)


@crl_group.command("info")
@click.argument("file", metavar="FILE")
@_issuer_option("CA certificate(s) to verify the signature with.")
@click.option("--at", "at_text", metavar="TIME", help="Freshness time (ISO 8601; default now).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def crl_info(file: str, issuer_paths: tuple[str, ...], at_text: str | None, as_json: bool) -> None:
    """Entries, thisUpdate, nextUpdate, number and signature validity of a CRL (DER or PEM)."""
    at = parse_time(at_text)
    issuers = _load_certs(issuer_paths)
    d = crl_info_dict(load_crl_file(file), issuers, at)
    emit(d, as_json, lambda: _crl_text(d))
    if d["signature"] == "invalid":
        sys.exit(int(Exit.INVALID))


# --- revocation ----------------------------------------------------------------------------------


@click.group("revocation")
def revocation_group() -> None:
    """Revocation status of certificates: check, store, monitor."""


_EXIT = {
    RevocationStatus.GOOD: Exit.OK,
    RevocationStatus.REVOKED: Exit.INVALID,
    RevocationStatus.UNKNOWN: Exit.INDETERMINATE,
}


def _result_text(r: RevocationResult) -> str:
    line = f"{r.status.value}"
    if r.reason:
        line += f" ({r.reason.value})"
    if r.revoked_at:
        line += f" at {r.revoked_at.isoformat()}"
    return f"{line}\nsource: {r.source}\n{r.detail}".rstrip()


@revocation_group.command("check")
@click.argument("cert_path", metavar="CERT")
@_issuer_option("Issuing CA certificate (repeat for several generations).", required=True)
@click.option(
    "--crl", "crl_paths", multiple=True, metavar="FILE", help="CRL file(s) (full and delta)."
)
@click.option("--ocsp", "ocsp_url", metavar="URL", help="OCSP responder URL.")
@click.option(
    "--store", "store_path", type=click.Path(path_type=Path), metavar="DB", help="Revocation store."
)
@click.option("--at", "at_text", metavar="TIME", help="Validation time (ISO 8601; default now).")
@click.option("--soft-fail", is_flag=True, help="Treat unknown status as good.")
@click.option("--max-crl-age", type=float, metavar="HOURS", help="Reject CRLs older than this.")
@click.option("--prefer", type=click.Choice(["crl", "ocsp"]), default="crl", show_default=True)
# The range keeps inf and overflowing values out (the socket would traceback); NaN passes click
# ranges and is refused by RevocationPolicy.
@click.option(
    "--timeout",
    type=click.FloatRange(0, 3600, min_open=True),
    default=10.0,
    show_default=True,
    help="OCSP timeout (s).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def check(
    cert_path: str,
    issuer_paths: tuple[str, ...],
    crl_paths: tuple[str, ...],
    ocsp_url: str | None,
    store_path: Path | None,
    at_text: str | None,
    soft_fail: bool,
    max_crl_age: float | None,
    prefer: str,
    timeout: float,
    as_json: bool,
) -> None:
    """Is CERT revoked? Exit 0 good, 1 revoked, 3 unknown, 2 usage or malformed input."""
    if not crl_paths and not ocsp_url and store_path is None:
        raise UsageError("give --crl FILE, --ocsp URL or --store DB")
    if max_crl_age is not None and not 0 <= max_crl_age <= 1e6:  # also refuses NaN
        raise UsageError("--max-crl-age must be between 0 and 1000000 hours")
    at = parse_time(at_text)
    cert = JpkiCertificate.load(read_input_file(cert_path))
    issuer = _pick_issuer(cert, _load_certs(issuer_paths))
    crls = [load_crl_file(p) for p in crl_paths]
    policy = RevocationPolicy(
        soft_fail=soft_fail,
        max_crl_age=timedelta(hours=max_crl_age) if max_crl_age is not None else None,
        prefer="ocsp" if prefer == "ocsp" else "crl",
        ocsp_timeout=timeout,
    )
    store = None
    if store_path is not None:
        if not store_path.exists():
            raise UsageError(f"no revocation store at {store_path}")
        from jpki.revocation.store import RevocationStore

        store = RevocationStore(store_path)
    try:
        res = check_revocation(
            cert, issuer, crls=crls, ocsp_url=ocsp_url, store=store, at=at, policy=policy
        )
    finally:
        if store is not None:
            store.close()
    emit(res.to_json(), as_json, lambda: _result_text(res))
    sys.exit(int(_EXIT[res.status]))


@revocation_group.group("store")
def store_group() -> None:
    """The SQLite revocation store."""


@store_group.command("load")
@click.argument("db", type=click.Path(path_type=Path))
@click.argument("crl_paths", nargs=-1, required=True, metavar="CRL...")
@_issuer_option("CA certificate(s) that may have signed the CRLs.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def store_load(
    db: Path, crl_paths: tuple[str, ...], issuer_paths: tuple[str, ...], as_json: bool
) -> None:
    """Verify CRLs and make them current in DB (atomic; CRL numbers never go backwards)."""
    from jpki.revocation.store import RevocationStore

    issuers = _load_certs(issuer_paths)
    with RevocationStore(db) as store:
        if not issuers:
            issuers = [JpkiCertificate.from_cryptography(c) for c in store.signers()]
        if not issuers:
            raise UsageError("give --issuer CA (the store knows no CA yet)")
        results = []
        for p in crl_paths:
            r = store.load(load_crl_file(p), issuers)
            results.append({"file": p, **r.__dict__})
    emit(
        results,
        as_json,
        lambda: "\n".join(
            f"{r['file']}: {'delta ' if r['is_delta'] else ''}CRL #{r['number']} "
            f"({r['entries']} entries) loaded"
            + (f", replaces #{r['replaced']}" if r["replaced"] is not None else "")
            for r in results
        ),
    )


@revocation_group.command("monitor")
@click.argument("db", type=click.Path(path_type=Path))
@click.argument("cert_dir", type=click.Path(path_type=Path))
@_issuer_option("CA certificate(s) (default: the signers of the stored CRLs).")
@click.option("--at", "at_text", metavar="TIME", help="Check time (ISO 8601; default now).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def monitor_cmd(
    db: Path, cert_dir: Path, issuer_paths: tuple[str, ...], at_text: str | None, as_json: bool
) -> None:
    """Report stored signing certificates revoked since the last run (現況確認).

    Exit 0 nothing new, 1 newly revoked certificates reported, 3 some status unknown.
    """
    from jpki.revocation.monitor import monitor
    from jpki.revocation.store import RevocationStore

    if not db.exists():
        raise UsageError(f"no revocation store at {db}")
    at = parse_time(at_text)
    issuers: list[x509.Certificate] = [c.certificate for c in _load_certs(issuer_paths)]
    with RevocationStore(db) as store:
        report = monitor(store, cert_dir, at=at, issuers=issuers or None)

    def text() -> str:
        lines = [
            f"checked {report.checked} certificates; {len(report.newly_revoked)} newly revoked"
        ]
        for e in report.newly_revoked:
            reason = e.reason.value if e.reason else "-"
            when = e.revoked_at.isoformat() if e.revoked_at else "?"
            lines.append(f"REVOKED {e.path}: {reason} = {e.meaning} at {when}")
        for e in report.unknown:
            lines.append(f"UNKNOWN {e.path}: {e.detail}")
        return "\n".join(lines)

    emit(report.to_json(), as_json, text)
    if report.newly_revoked:
        sys.exit(int(Exit.INVALID))
    if report.unknown:
        sys.exit(int(Exit.INDETERMINATE))


commands: list[click.Command] = [crl_group, revocation_group]

revocation_group.add_command(__import__("jpki.cli.revocation_sync", fromlist=["sync_cmd"]).sync_cmd)
