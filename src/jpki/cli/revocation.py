"""`jpki crl info` and `jpki revocation check|store load|monitor` (docs/revocation.md)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from cryptography import x509

from jpki._files import scan_directory
from jpki.cert import JpkiCertificate, name_to_text
from jpki.cli import _config
from jpki.cli._common import (
    Exit,
    echo,
    emit,
    handle_errors,
    parse_time,
    printable,
    read_input_file,
)
from jpki.errors import CrlError, RevocationError, UsageError
from jpki.revocation.crl import Crl
from jpki.revocation.index import WalkProgress
from jpki.revocation.monitor import MonitorEvent
from jpki.revocation.policy import (
    RevocationPolicy,
    RevocationResult,
    RevocationSource,
    RevocationStatus,
    check_revocation,
    issued_by,
)

_F = TypeVar("_F", bound=Callable[..., Any])


#: Names of CRL files taken from a --crl-dir directory.
CRL_SUFFIXES = (".crl", ".der", ".pem")


def _issuer_option(help: str, *, required: bool = False) -> Callable[[_F], _F]:
    """``--issuer CA`` (repeatable: CA generations share a DN) into ``issuer_paths``."""
    return click.option(
        "--issuer", "issuer_paths", multiple=True, required=required, metavar="CA", help=help
    )


def _quiet_option(fn: _F) -> _F:
    return click.option(
        "--quiet", "-q", is_flag=True, help="No progress on stderr (shown only on a terminal)."
    )(fn)


def _load_certs(paths: tuple[str, ...]) -> list[JpkiCertificate]:
    return [JpkiCertificate.load(read_input_file(p)) for p in paths]


def load_crl_file(path: str, *, progress: WalkProgress | None = None) -> Crl:
    """A CRL named on the command line ('-' reads stdin); a big file is copied privately
    and memory-mapped (see ``Crl.from_file``)."""
    if path == "-":
        crl = Crl.load(read_input_file(path), index=False)
        crl.build_index(progress)
        return crl
    return Crl.from_file(path, progress=progress)


def _load_crls_showing_progress(paths: Sequence[str], *, quiet: bool) -> list[Crl]:
    """``load_crl_file`` for each path, with a progress line on a terminal (not ``quiet``)."""
    from jpki.revocation.progress import Progress

    out = []
    for p in paths:
        with Progress(f"{p}: parsing", enabled=False if quiet else None) as prog:
            out.append(
                load_crl_file(
                    p,
                    progress=lambda n, done, total: prog.update(
                        n, total=n * total // done if done else None
                    ),
                )
            )
    return out


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
    """The ``crl info`` object: header fields, signature checked against ``issuers``, freshness."""
    signature = "unchecked"
    signed_by = None
    if issuers:
        try:
            signer = crl.verify(issuers)
            signature = "valid"
            signed_by = name_to_text(signer.subject)
        except CrlError:
            signature = "invalid"
    kind, hash_cls = crl.signature_algorithm
    return {
        "issuer": name_to_text(crl.issuer),
        "entries": len(crl),
        "this_update": crl.this_update,
        "next_update": crl.next_update,
        "number": crl.number,
        "delta_base_number": crl.base_number,
        "distribution_point": [name_to_text(n) for n in crl.idp_names],
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
@_quiet_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def crl_info(
    file: str, issuer_paths: tuple[str, ...], at_text: str | None, quiet: bool, as_json: bool
) -> None:
    """Entries, thisUpdate, nextUpdate, number and signature validity of a CRL (DER or PEM)."""
    at = parse_time(at_text)
    issuers = _load_certs(issuer_paths)
    d = crl_info_dict(_load_crls_showing_progress([file], quiet=quiet)[0], issuers, at)
    emit(d, as_json, lambda: _crl_text(d))
    if d["signature"] == "invalid":
        sys.exit(int(Exit.INVALID))


# --- revocation ----------------------------------------------------------------------------------


def _store_url(value: str, *, must_exist: bool) -> str:
    """A store argument: PostgreSQL URLs pass through; a SQLite path must exist to be read."""
    if value.startswith(("postgresql://", "postgres://")):
        return value
    path = value[len("sqlite:///") :] if value.startswith("sqlite:///") else value
    if "://" in path:
        raise UsageError(
            f"unsupported store URL {value.split('://')[0]}:// (path, sqlite:///, postgresql://)"
        )
    if must_exist and not Path(path).exists():
        raise UsageError(f"no revocation store at {path}")
    return path


class _Unusable:
    """A source that could not even be opened: it always answers "cannot say"."""

    def __init__(self, name: str, why: str) -> None:
        self.source_name = name
        self._why = why

    def status(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        *,
        at: datetime,
        max_age: timedelta | None = None,
    ) -> RevocationResult:
        return RevocationResult(RevocationStatus.UNKNOWN, source=self.source_name, detail=self._why)


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
    if r.soft_failed:
        line += " (accepted by --soft-fail: revocation status NOT established)"
    if r.invalidity_date:
        line += f"\ninvalid since: {r.invalidity_date.isoformat()} (invalidityDate)"
    return f"{line}\nsource: {r.source}\n{r.detail}".rstrip()


@revocation_group.command("check")
@click.argument("cert_path", metavar="CERT")
@_issuer_option("Issuing CA certificate (repeat for several generations).", required=True)
@click.option(
    "--crl", "crl_paths", multiple=True, metavar="FILE", help="CRL file(s) (full and delta)."
)
@click.option(
    "--crl-dir",
    "crl_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=_config.default("crl_dir"),
    metavar="DIR",
    help="Every *.crl/*.der/*.pem CRL in DIR (default: JPKI_CRL_DIR or the config file).",
)
@click.option("--ocsp", "ocsp_url", metavar="URL", help="OCSP responder URL.")
@click.option(
    "--store",
    "store_path",
    default=_config.default("store"),
    metavar="STORE",
    help="Revocation store: a path, sqlite:///PATH or postgresql://... "
    "(default: JPKI_STORE or the config file).",
)
@click.option("--at", "at_text", metavar="TIME", help="Validation time (ISO 8601; default now).")
@click.option(
    "--soft-fail",
    is_flag=True,
    help="Accept an unknown status: it stays 'unknown' (soft_failed), exit 0.",
)
@click.option("--max-crl-age", type=float, metavar="HOURS", help="Reject CRLs older than this.")
@click.option("--prefer", type=click.Choice(["crl", "ocsp"]), default="crl", show_default=True)
# The range keeps inf and overflowing values out (the socket would traceback); NaN passes click
# ranges and is refused by RevocationPolicy.
@click.option(
    "--timeout",
    type=click.FloatRange(0, 3600, min_open=True),
    default=10.0,
    show_default=True,
    help="OCSP deadline for the whole request (s).",
)
@_quiet_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def check(
    cert_path: str,
    issuer_paths: tuple[str, ...],
    crl_paths: tuple[str, ...],
    crl_dir: Path | None,
    ocsp_url: str | None,
    store_path: str | None,
    at_text: str | None,
    soft_fail: bool,
    max_crl_age: float | None,
    prefer: str,
    timeout: float,
    quiet: bool,
    as_json: bool,
) -> None:
    """Is CERT revoked? Exit 0 good, 1 revoked, 3 unknown, 2 usage or malformed input."""
    if crl_dir is not None:
        crl_paths = (*crl_paths, *(str(p) for p in scan_directory(crl_dir, CRL_SUFFIXES)))
    if not crl_paths and not ocsp_url and store_path is None:
        raise UsageError("give --crl FILE, --crl-dir DIR, --ocsp URL or --store DB")
    if max_crl_age is not None and not 0 <= max_crl_age <= 1e6:  # also refuses NaN
        raise UsageError("--max-crl-age must be between 0 and 1000000 hours")
    at = parse_time(at_text)
    cert = JpkiCertificate.load(read_input_file(cert_path))
    issuer = _pick_issuer(cert, _load_certs(issuer_paths))
    crls = _load_crls_showing_progress(crl_paths, quiet=quiet)
    policy = RevocationPolicy(
        soft_fail=soft_fail,
        max_crl_age=timedelta(hours=max_crl_age) if max_crl_age is not None else None,
        prefer="ocsp" if prefer == "ocsp" else "crl",
        ocsp_timeout=timeout,
    )
    store = None
    broken: list[RevocationSource] = []
    if store_path is not None:
        url = _store_url(store_path, must_exist=True)
        from jpki.revocation.store import RevocationStore

        try:
            store = RevocationStore(url)
        except RevocationError as exc:
            # An unusable store is a source that cannot say (unknown), like a broken CRL.
            broken.append(_Unusable("store", str(exc)))
    try:
        res = check_revocation(
            cert,
            issuer,
            crls=crls,
            ocsp_url=ocsp_url,
            store=store,
            sources=broken,
            at=at,
            policy=policy,
        )
    finally:
        if store is not None:
            store.close()
    emit(res.to_json(), as_json, lambda: _result_text(res))
    # soft-fail: the status stays "unknown" in the output; only the exit code accepts it
    sys.exit(int(Exit.OK if res.accepted else _EXIT[res.status]))


@revocation_group.group("store")
def store_group() -> None:
    """The revocation store (SQLite or PostgreSQL)."""


@store_group.command("load")
@click.argument("db", metavar="STORE")
@click.argument("crl_paths", nargs=-1, required=True, metavar="CRL...")
@_issuer_option("CA certificate(s) that may have signed the CRLs.")
@_quiet_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def store_load(
    db: str, crl_paths: tuple[str, ...], issuer_paths: tuple[str, ...], quiet: bool, as_json: bool
) -> None:
    """Verify CRLs and make them current in STORE (atomic; CRL numbers never go backwards).

    STORE is a path, sqlite:///PATH or postgresql://... (created if needed).
    """
    from jpki.revocation.progress import Progress
    from jpki.revocation.store import RevocationStore

    db = _store_url(db, must_exist=False)
    issuers = _load_certs(issuer_paths)
    show = False if quiet else None
    with RevocationStore(db) as store:
        if not issuers:
            issuers = [JpkiCertificate.from_cryptography(c) for c in store.signers()]
        if not issuers:
            raise UsageError("give --issuer CA (the store knows no CA yet)")
        results = []
        for p in crl_paths:
            with Progress(f"{p}: parsing", enabled=show) as parse:
                crl = load_crl_file(
                    p,
                    progress=lambda n, done, total: parse.update(
                        n, total=n * total // done if done else None
                    ),
                )
            with Progress(f"{p}: writing", enabled=show) as write:
                r = store.load(
                    crl, issuers, progress=lambda done, total: write.update(done, total=total)
                )
            results.append({"file": p, **r.__dict__})
    emit(
        results,
        as_json,
        lambda: "\n".join(
            f"{printable(r['file'])}: {'delta ' if r['is_delta'] else ''}CRL #{r['number']} "
            f"({r['entries']} entries) loaded"
            + (f", replaces #{r['replaced']}" if r["replaced"] is not None else "")
            + (
                f"; {r['kept_final']} final revocations it dropped are kept"
                if r["kept_final"]
                else ""
            )
            for r in results
        ),
    )


def _event_line(e: MonitorEvent) -> str:
    reason = e.reason.value if e.reason else "-"
    when = e.revoked_at.isoformat() if e.revoked_at else "?"
    return f"REVOKED {printable(e.path)}: {reason} = {e.meaning} at {when}"


@revocation_group.command("monitor")
@click.argument("db", metavar="STORE")
@click.argument("cert_dir", type=click.Path(path_type=Path))
@_issuer_option("CA certificate(s) (default: the signers of the stored CRLs).")
@click.option("--at", "at_text", metavar="TIME", help="Check time (ISO 8601; default now).")
@click.option(
    "--peek", is_flag=True, help="Show what would be reported without marking it reported."
)
@_quiet_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def monitor_cmd(
    db: str,
    cert_dir: Path,
    issuer_paths: tuple[str, ...],
    at_text: str | None,
    peek: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Report stored signing certificates revoked since the last run (現況確認).

    A notice is marked reported only after it was written out (at-least-once); a certificate
    reported on hold is reported again when revoked for good. Exit 0 nothing new, 1 newly
    revoked certificates reported, 3 some status unknown, 130 interrupted, 2 error.
    """
    from jpki.revocation.monitor import mark_delivered, monitor
    from jpki.revocation.progress import Progress
    from jpki.revocation.store import RevocationStore

    db = _store_url(db, must_exist=True)
    at = parse_time(at_text)
    issuers: list[x509.Certificate] = [c.certificate for c in _load_certs(issuer_paths)]

    def deliver(e: MonitorEvent) -> None:
        echo(_event_line(e))
        sys.stdout.flush()  # on the way out before it is marked reported

    prog = Progress("checking", unit="certificates", enabled=False if quiet else None)
    with RevocationStore(db) as store, prog:
        report = monitor(
            store,
            cert_dir,
            at=at,
            issuers=issuers or None,
            deliver=None if as_json else deliver,
            peek=peek,
            progress=lambda done, total: prog.update(done, total=total),
        )
        if as_json:
            emit({**report.to_json(), "peek": peek}, True)
            sys.stdout.flush()
            if not peek:
                mark_delivered(store, report.newly_revoked)
        else:
            lines = [
                f"checked {report.checked} certificates; {len(report.newly_revoked)} newly revoked"
                + (" (peek: nothing marked reported)" if peek else "")
            ]
            lines += [f"UNKNOWN {printable(e.path)}: {printable(e.detail)}" for e in report.unknown]
            echo("\n".join(lines))
    if report.newly_revoked:
        sys.exit(int(Exit.INVALID))
    if report.unknown:
        sys.exit(int(Exit.INDETERMINATE))


commands: list[click.Command] = [crl_group, revocation_group]

revocation_group.add_command(__import__("jpki.cli.revocation_sync", fromlist=["sync_cmd"]).sync_cmd)
