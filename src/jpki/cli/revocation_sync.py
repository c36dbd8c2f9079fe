"""`jpki revocation sync`: load a CRL directory into a `jpki serve` database (cron job)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from jpki.cli._common import Exit, emit, handle_errors


@click.command("sync")
@click.option(
    "--db", "db", metavar="URL", help="postgresql://… or a SQLite file (as for jpki serve)."
)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="Data directory (as for jpki serve)."
)
@click.option("--crl-dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Directory of CRL files (DER or PEM: *.crl, *.der, *.pem).")  # fmt: skip
@click.option("--trust", "trust", multiple=True, metavar="jlis|CA",
              help="CAs that sign the CRLs (default: the built-in J-LIS roots).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def sync_cmd(
    db: str | None, data_dir: Path | None, crl_dir: Path, trust: tuple[str, ...], as_json: bool
) -> None:
    """Verify every CRL in --crl-dir and load it into the service's revocation store
    (atomically, archived as evidence for the audit record)."""
    from jpki.service.adapter import RevocationStore
    from jpki.service.crlwatch import sync_dir
    from jpki.service.db import Database
    from jpki.service.trust import database_url, resolve_anchors

    anchors = resolve_anchors(trust)
    url = database_url(db, data_dir)
    database = Database(url)
    try:
        with RevocationStore(url) as store:
            results = sync_dir(database, store, crl_dir, anchors)
    finally:
        database.close()
    failed = [r for r in results if r.error]

    def text() -> str:
        lines = []
        for r in results:
            if r.error:
                lines.append(f"{r.path}: NOT loaded: {r.error}")
            elif r.loaded:
                lines.append(f"{r.path}: loaded {r.issuer} #{r.number} (was #{r.previous})")
            else:
                lines.append(f"{r.path}: already current ({r.issuer} #{r.number})")
        return "\n".join(lines) or "no CRL files found"

    emit([r.to_json() for r in results], as_json, text)
    sys.exit(int(Exit.INVALID if failed else Exit.OK))
