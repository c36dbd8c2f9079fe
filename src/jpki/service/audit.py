"""The hash-chained audit record (本人確認記録): append, export, verify offline.

Each record is canonical JSON (sorted keys, no spaces) carrying its sequence number and the
previous record's hash; its own hash is SHA-256 over that JSON. Appends are serialised by the
database-wide lock and commit before the service answers. The record keeps what a re-check
needs: the request's inputs (certificate, signature, nonce or digest, CMS), the verdict, the
revocation answers and the SHA-256 of each CRL consulted (CRLs stay archived in the database
as long as records refer to them), the trust anchors' fingerprints. Never a PIN, a password or
a My Number: the card-side secrets never leave the client, and requests carry none.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jpki.errors import JpkiError
from jpki.service.db import Database, Tx

GENESIS = "0" * 64


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _head(tx: Tx) -> tuple[int, str]:
    row = tx.execute("SELECT value FROM svc_state WHERE name = 'audit_head'").fetchone()
    if row is None:
        return 0, GENESIS
    seq, _, h = str(row[0]).partition(":")
    return int(seq), h


def append(
    db: Database,
    body: dict[str, Any],
    *,
    also: Callable[[Tx, int], None] | None = None,
) -> tuple[int, str]:
    """Append ``body`` as the next record; ``also`` runs in the same transaction.

    Returns (sequence number, hash). When this returns, the record is committed.
    """
    with db.transaction(exclusive=True) as tx:
        seq, prev = _head(tx)
        seq += 1
        full = {**body, "seq": seq, "prev_hash": prev}
        h = record_hash(full)
        tx.execute(
            "INSERT INTO svc_audit (seq, at, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?)",
            (seq, full["time"], canonical(full).decode(), prev, h),
        )
        if seq == 1:
            tx.execute(
                "INSERT INTO svc_state (name, value) VALUES ('audit_head', ?)", (f"{seq}:{h}",)
            )
        else:
            tx.execute("UPDATE svc_state SET value = ? WHERE name = 'audit_head'", (f"{seq}:{h}",))
        if also is not None:
            also(tx, seq)
    return seq, h


def records(
    db: Database, *, since: datetime | None = None, batch: int = 500
) -> Iterator[dict[str, Any]]:
    """Records in sequence order (``since``: only those at or after that time)."""
    last = 0
    while True:
        rows = db.query(
            "SELECT seq, body, hash FROM svc_audit WHERE seq > ? ORDER BY seq LIMIT ?",
            (last, batch),
        )
        if not rows:
            return
        for seq, body, h in rows:
            last = int(seq)
            rec = json.loads(body)
            if since is not None and datetime.fromisoformat(rec["time"]) < since:
                continue
            yield {**rec, "hash": h}


@dataclass(frozen=True)
class AuditProblem:
    seq: int
    what: str


def check_chain(db: Database) -> tuple[int, list[AuditProblem]]:
    """Hash links, contiguous numbering and the stored head: (records seen, problems)."""
    problems: list[AuditProblem] = []
    prev, expected_seq, n = GENESIS, 1, 0
    last = 0
    while True:
        rows = db.query(
            "SELECT seq, body, prev_hash, hash FROM svc_audit WHERE seq > ? ORDER BY seq LIMIT 500",
            (last,),
        )
        if not rows:
            break
        for seq, body, prev_col, h in rows:
            seq = int(seq)
            last = seq
            n += 1
            if seq != expected_seq:
                problems.append(AuditProblem(seq, f"gap: expected record {expected_seq}"))
            expected_seq = seq + 1
            try:
                rec = json.loads(body)
            except ValueError:
                problems.append(AuditProblem(seq, "record is not JSON"))
                prev = h
                continue
            if rec.get("seq") != seq or rec.get("prev_hash") != prev_col:
                problems.append(AuditProblem(seq, "record body disagrees with its row"))
            if prev_col != prev:
                problems.append(AuditProblem(seq, "previous-hash link broken"))
            if record_hash(rec) != h or canonical(rec).decode() != body:
                problems.append(AuditProblem(seq, "record hash does not match its content"))
            prev = h
    head = db.query("SELECT value FROM svc_state WHERE name = 'audit_head'")
    want = f"{last}:{prev}" if n else None
    have = str(head[0][0]) if head else None
    if have != want:
        problems.append(AuditProblem(last, f"chain head {have} does not match last record {want}"))
    return n, problems


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class AuditError(JpkiError):
    """The audit record could not be written: the service answers 503, never unrecorded."""
