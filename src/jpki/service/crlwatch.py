"""CRL ingestion: a directory watched for new files, and the one-shot sync for cron jobs.

A file is read whole, verified against the trust anchors, archived (its DER is the evidence
audit records name) and loaded into the revocation store (:class:`RevocationStore`, keyed by
issuer key; one transaction, so every instance of a fleet sees the old CRL or the new one,
never a mix; CRL numbers only go up per issuer key). A file that does not verify (still
being written, damaged, foreign) is skipped and tried again once its size or mtime changes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jpki._files import MAX_CRL_FILE, read_regular_file, scan_directory
from jpki.errors import JpkiError
from jpki.service import adapter, state
from jpki.service.adapter import RevocationStore
from jpki.service.db import Database

log = logging.getLogger("jpki.service.crl")

SUFFIXES = (".crl", ".der", ".pem")


@dataclass(frozen=True)
class SyncResult:
    """One CRL file's outcome in a sync: loaded or why not."""

    path: str
    loaded: bool
    number: int | None = None
    previous: int | None = None
    issuer: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        """The JSON form: path, whether it loaded, CRL numbers, issuer and error."""
        return {
            "path": self.path,
            "loaded": self.loaded,
            "number": self.number,
            "previous": self.previous,
            "issuer": self.issuer,
            "error": self.error,
        }


def _current_ids(store: RevocationStore) -> set[str]:
    return {s.crl_id.hex() for s in store.current()}


def load_file(
    db: Database, store: RevocationStore, path: Path, anchors: Sequence[bytes]
) -> SyncResult:
    """Verify one CRL file, archive it and make it current (no-op if it already is)."""
    try:
        crl = adapter.prepare_crl(read_regular_file(path, max_bytes=MAX_CRL_FILE), anchors)
        if crl.crl_id in _current_ids(store):
            return SyncResult(str(path), False, crl.number, crl.number, crl.issuer)
        # Archived first: a record may name this CRL as soon as the store serves it.
        new = state.archive_crl(
            db, crl.issuer_key, crl.number, crl.crl.is_delta, crl.crl_id, crl.issuer, crl.crl.der
        )
        try:
            number, previous = crl.load_into(store)
        except JpkiError:
            if new:  # refused (e.g. going backwards): it never answered anything
                state.unarchive_crl(db, crl.crl_id)
            raise
    except JpkiError as exc:
        return SyncResult(str(path), False, error=str(exc))
    return SyncResult(str(path), True, number, previous, crl.issuer)


def sync_dir(
    db: Database, store: RevocationStore, directory: Path, anchors: Sequence[bytes]
) -> list[SyncResult]:
    """Load every CRL file in ``directory`` (sorted by name)."""
    return [load_file(db, store, p, anchors) for p in scan_directory(directory, SUFFIXES)]


class CrlWatcher:
    """Re-scan a directory; load files whose (size, mtime) is new."""

    def __init__(
        self, db: Database, store: RevocationStore, directory: Path, anchors: Sequence[bytes]
    ) -> None:
        self.db, self.store, self.directory, self.anchors = db, store, directory, anchors
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
            res = load_file(self.db, self.store, p, self.anchors)
            if res.error:
                log.warning("CRL %s not loaded: %s", p, res.error)
            elif res.loaded:
                log.info("CRL %s loaded: %s #%s (was #%s)", p, res.issuer, res.number, res.previous)
                changed = True
        return changed
