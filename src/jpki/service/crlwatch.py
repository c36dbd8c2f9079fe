"""CRL ingestion: a directory watched for new files, and the one-shot sync for cron jobs.

A file is read whole, verified against the trust anchors and made current in one database
transaction (:func:`jpki.service.state.store_crl`): every instance of a fleet sees the old CRL
or the new one, never a mix. A file that does not verify (still being written, damaged,
foreign) is skipped and tried again once its size or mtime changes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jpki._files import MAX_CRL_FILE, read_regular_file, scan_directory
from jpki.errors import JpkiError
from jpki.service import adapter, state
from jpki.service.db import Database

log = logging.getLogger("jpki.service.crl")

SUFFIXES = (".crl", ".der", ".pem")


@dataclass(frozen=True)
class SyncResult:
    path: str
    loaded: bool
    number: int | None = None
    previous: int | None = None
    issuer: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "loaded": self.loaded,
            "number": self.number,
            "previous": self.previous,
            "issuer": self.issuer,
            "error": self.error,
        }


def load_file(db: Database, path: Path, anchors: Sequence[bytes]) -> SyncResult:
    """Verify one CRL file and make it current (no-op if it already is)."""
    try:
        der = read_regular_file(path, max_bytes=MAX_CRL_FILE)
        meta = adapter.crl_meta(der, anchors)
        changed, previous = state.store_crl(db, meta, adapter.crl_der(der))
    except JpkiError as exc:
        return SyncResult(str(path), False, error=str(exc))
    return SyncResult(str(path), changed, meta.number, previous, meta.issuer)


def sync_dir(db: Database, directory: Path, anchors: Sequence[bytes]) -> list[SyncResult]:
    """Load every CRL file in ``directory`` (sorted by name)."""
    return [load_file(db, p, anchors) for p in scan_directory(directory, SUFFIXES)]


class CrlWatcher:
    """Re-scan a directory; load files whose (size, mtime) is new."""

    def __init__(self, db: Database, directory: Path, anchors: Sequence[bytes]) -> None:
        self.db, self.directory, self.anchors = db, directory, anchors
        self._seen: dict[Path, tuple[int, int]] = {}
        self._warned: set[str] = set()

    def _warn_once(self, message: str) -> None:
        # A planted FIFO would otherwise log on every scan.
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def scan(self) -> bool:
        """One pass; True if some CRL became current."""
        changed = False
        try:
            files = scan_directory(self.directory, SUFFIXES, warn=self._warn_once)
        except JpkiError as exc:
            log.warning("%s", exc)
            return False
        for p in files:
            try:
                st = p.stat()
            except OSError:
                continue
            sig = (st.st_size, st.st_mtime_ns)
            if self._seen.get(p) == sig:
                continue
            self._seen[p] = sig
            res = load_file(self.db, p, self.anchors)
            if res.error:
                log.warning("CRL %s not loaded: %s", p, res.error)
            elif res.loaded:
                log.info("CRL %s loaded: %s #%s (was #%s)", p, res.issuer, res.number, res.previous)
                changed = True
        return changed
