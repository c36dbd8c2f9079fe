"""`jpki serve` (+ `serve keys add|list|revoke`), `jpki audit verify|export` (docs/service.md)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from jpki.cli._common import Exit, emit, handle_errors
from jpki.errors import UsageError


def _db_options(fn: Any) -> Any:
    fn = click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        help="Data directory of the embedded SQLite database (default $JPKI_DATA_DIR or "
        "~/.local/share/jpki/service).",
    )(fn)
    fn = click.option(
        "--db", "db", metavar="URL", help="postgresql://… for a fleet, or a SQLite file path."
    )(fn)
    return fn


def _open(db: str | None, data_dir: Path | None) -> Any:
    from jpki.service.db import Database
    from jpki.service.trust import database_url

    return Database(database_url(db, data_dir))


@click.group("serve", invoke_without_command=True)
@_db_options
@click.option("--trust", "trust", multiple=True, metavar="jlis|CA",
              help="Trust anchors: 'jlis' (built-in J-LIS roots; default), CA files.")  # fmt: skip
@click.option("--crl-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Directory watched for CRL files (loaded atomically).")  # fmt: skip
@click.option("--crl-poll", type=click.FloatRange(0.05, 3600), default=2.0, show_default=True,
              help="Seconds between scans of --crl-dir.")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--workers", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Processes in the verification pool.")  # fmt: skip
@click.option("--soft-fail", is_flag=True,
              help="Accept an unknown revocation status (every answer says so).")  # fmt: skip
@click.option("--ocsp", "ocsp_url", metavar="URL",
              help="OCSP responder asked when no CRL answers (default: the AIA).")  # fmt: skip
@click.option("--ocsp-aia/--no-ocsp-aia", default=True, show_default=True,
              help="Ask the OCSP responder named in the certificate (without --ocsp).")  # fmt: skip
@click.option("--ocsp-timeout", type=click.FloatRange(0.1, 300), default=10.0, show_default=True,
              help="Total deadline in seconds for one OCSP request.")  # fmt: skip
@click.option("--max-body", type=click.IntRange(1024, 1 << 30), default=1 << 20, show_default=True,
              help="Largest request body in bytes (larger: 413).")  # fmt: skip
@click.option("--keep-alive", type=click.IntRange(1, 3600), default=5, show_default=True,
              help="Seconds an idle keep-alive connection stays open; keep a proxy's upstream "
                   "idle timeout below it.")  # fmt: skip
@click.pass_context
@handle_errors
def serve_group(
    ctx: click.Context,
    db: str | None,
    data_dir: Path | None,
    trust: tuple[str, ...],
    crl_dir: Path | None,
    crl_poll: float,
    host: str,
    port: int,
    workers: int,
    soft_fail: bool,
    ocsp_url: str | None,
    ocsp_aia: bool,
    ocsp_timeout: float,
    max_body: int,
    keep_alive: int,
) -> None:
    """Run the verification service (ASGI app under uvicorn); `keys` manages API keys."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        import uvicorn

        from jpki.service.app import ServiceConfig, create_app
    except ImportError as exc:
        raise UsageError(
            f"jpki serve needs the serve extra (pip install 'jpki[serve]'): {exc}"
        ) from None
    from jpki.service.trust import database_url, resolve_anchors

    if crl_dir is not None and not crl_dir.is_dir():
        raise UsageError(f"--crl-dir {crl_dir} is not a directory")
    if ocsp_url is not None:
        from jpki.revocation.ocsp import OcspSource

        OcspSource(ocsp_url)  # a bad URL is a usage error now, not on the first check
    config = ServiceConfig(
        db_url=database_url(db, data_dir),
        anchors=resolve_anchors(trust),
        crl_dir=crl_dir,
        workers=workers,
        soft_fail=soft_fail,
        max_body=max_body,
        crl_poll_seconds=crl_poll,
        ocsp_url=ocsp_url,
        ocsp_aia=ocsp_aia,
        ocsp_timeout=ocsp_timeout,
    )
    click.echo(f"jpki serve: http://{host}:{port}/ (database {_shown(config.db_url)})", err=True)
    uvicorn.run(
        create_app(config), host=host, port=port, log_level="info", access_log=False,
        timeout_graceful_shutdown=5, timeout_keep_alive=keep_alive,
    )  # fmt: skip


def _shown(url: str) -> str:
    from jpki.service.db import display_url

    return display_url(url)


@serve_group.group("keys")
def keys_group() -> None:
    """API keys of the relying parties (stored hashed; shown once when made)."""


@keys_group.command("add")
@click.argument("name")
@_db_options
@click.option("--rate", type=click.IntRange(1, 10**7), default=600, show_default=True,
              help="Requests per minute for this key (shared by all instances).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def keys_add(name: str, db: str | None, data_dir: Path | None, rate: int, as_json: bool) -> None:
    """Make a key for NAME; the key itself is printed once, on the last line."""
    from jpki.service.state import add_key

    database = _open(db, data_dir)
    try:
        rec, key = add_key(database, name, rate)
    finally:
        database.close()
    if as_json:
        click.echo(json.dumps({**rec.to_json(), "key": key}))
    else:
        click.echo(
            f"key {rec.id} for {rec.name} ({rec.rate_per_minute}/min); it is shown only now:"
        )
        click.echo(key)


@keys_group.command("list")
@_db_options
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def keys_list(db: str | None, data_dir: Path | None, as_json: bool) -> None:
    """The keys (id, name, rate, created, revoked) — never the keys themselves."""
    from jpki.service.state import list_keys

    database = _open(db, data_dir)
    try:
        keys = list_keys(database)
    finally:
        database.close()

    def text() -> str:
        rows = [
            f"{k.id}  {k.name}  {k.rate_per_minute}/min  created {k.created_at}"
            + (f"  REVOKED {k.revoked_at}" if k.revoked_at else "")
            for k in keys
        ]
        return "\n".join(rows) or "no API keys"

    emit([k.to_json() for k in keys], as_json, text)


@keys_group.command("revoke")
@click.argument("key_id")
@_db_options
@handle_errors
def keys_revoke(key_id: str, db: str | None, data_dir: Path | None) -> None:
    """Revoke a key by its id (running services stop accepting it within seconds)."""
    from jpki.service.state import revoke_key

    database = _open(db, data_dir)
    try:
        rec = revoke_key(database, key_id)
    finally:
        database.close()
    click.echo(f"key {rec.id} ({rec.name}) revoked at {rec.revoked_at}")


# --- audit ----------------------------------------------------------------------------------


@click.group("audit")
def audit_group() -> None:
    """The service's hash-chained audit record (本人確認記録)."""


@audit_group.command("verify")
@_db_options
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def audit_verify(db: str | None, data_dir: Path | None, as_json: bool) -> None:
    """Check the hash chain and re-check every record's evidence offline (exit 0: all good)."""
    from jpki.service import audit, jobs, state

    database = _open(db, data_dir)
    problems: list[dict[str, Any]] = []
    try:
        n, chain = audit.check_chain(database)
        problems += [{"seq": p.seq, "problem": p.what} for p in chain]
        anchors: dict[str, bytes] = {}
        crls: dict[tuple[str, int | None], list[bytes]] = {}
        checked = 0
        for rec in audit.records(database):
            fps = [f for f in rec.get("anchors", []) if f not in anchors]
            anchors.update(state.anchors_by_fingerprint(database, fps))
            evidence = rec.get("evidence")
            refs = evidence.get("crls", []) if isinstance(evidence, dict) else []
            for ref in refs:
                k = (str(ref.get("issuer_key")), ref.get("number"))
                if k not in crls:
                    crls[k] = state.archived_crls(database, *k)
            why = jobs.recheck(rec, anchors, crls)
            checked += 1
            if why:
                problems.append({"seq": rec.get("seq"), "problem": why})
    finally:
        database.close()
    report = {"records": n, "rechecked": checked, "ok": not problems, "problems": problems}

    def text() -> str:
        lines = [f"{n} records, chain and evidence re-checked: {checked}"]
        lines += [f"record {p['seq']}: {p['problem']}" for p in problems]
        lines.append("OK" if not problems else f"FAILED: {len(problems)} problem(s)")
        return "\n".join(lines)

    emit(report, as_json, text)
    sys.exit(int(Exit.OK if not problems else Exit.INVALID))


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    v = value.strip()
    if v and v[-1] in "dhm" and v[:-1].isdigit():
        unit = {"d": "days", "h": "hours", "m": "minutes"}[v[-1]]
        return datetime.now(UTC) - timedelta(**{unit: int(v[:-1])})
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"bad --since {value!r}: ISO 8601 time or a span like 7d, 12h") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@audit_group.command("export")
@_db_options
@click.option(
    "--since", metavar="TIME", help="Only records at or after TIME (ISO 8601, or 7d, 12h)."
)
@click.option("--out", type=click.Path(path_type=Path), help="Write here instead of stdout.")
@handle_errors
def audit_export(
    db: str | None, data_dir: Path | None, since: str | None, out: Path | None
) -> None:
    """Write the records as JSON Lines (one record per line, with its hash)."""
    from jpki.service import audit

    after = _since(since)
    database = _open(db, data_dir)
    try:
        stream = out.open("w", encoding="utf-8") if out else sys.stdout
        try:
            for rec in audit.records(database, since=after):
                stream.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
        finally:
            if out:
                stream.close()
    finally:
        database.close()


commands: list[click.Command] = [serve_group, audit_group]
