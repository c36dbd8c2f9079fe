"""Verification jobs: a JSON-ready dict in, an outcome dict out.

The same job dict is what the audit record keeps, so ``jpki audit verify`` re-runs exactly
the request that was answered (:func:`run_job` with the archived CRLs and anchors). In the
service, :func:`worker_run` executes jobs in the process pool, fetching CRL DER from the
database once per process.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from jpki.errors import JpkiError
from jpki.service import adapter
from jpki.service.audit import unb64

KINDS = ("login", "signature", "cms", "status-check", "document")


def run_job(job: dict[str, Any], anchors: list[bytes], crls: dict[str, bytes]) -> dict[str, Any]:
    """The outcome of one job; a ``JpkiError`` from bad input becomes ``{"error": why}``."""
    at = datetime.fromisoformat(job["time"])
    soft = bool(job.get("soft_fail", False))
    try:
        kind = job["kind"]
        if kind == "login":
            out = adapter.verify_login(
                job["challenge_id"],
                unb64(job["nonce"]),
                unb64(job["certificate"]),
                unb64(job["signature"]),
                anchors=anchors,
                crls=crls,
                at=at,
                soft_fail=soft,
            )
        elif kind == "signature":
            out = adapter.verify_raw_signature(
                unb64(job["certificate"]),
                unb64(job["signature"]),
                data=unb64(job["data"]) if job.get("data") is not None else None,
                digest=unb64(job["digest"]) if job.get("digest") is not None else None,
                hash_alg=job["hash"],
                purpose=job["purpose"],
                anchors=anchors,
                crls=crls,
                at=at,
                soft_fail=soft,
            )
        elif kind == "cms":
            out = adapter.verify_cms_blob(
                unb64(job["cms"]),
                content=unb64(job["content"]) if job.get("content") is not None else None,
                purpose=job["purpose"],
                anchors=anchors,
                crls=crls,
                at=at,
                soft_fail=soft,
            )
        elif kind == "status-check":
            out = adapter.status_check(
                [unb64(c) for c in job["certificates"]],
                anchors=anchors,
                crls=crls,
                at=at,
                soft_fail=soft,
            )
        elif kind == "document":
            out = adapter.verify_pdf_blob(
                unb64(job["pdf"]), anchors=anchors, crls=crls, at=at, soft_fail=soft
            )
        else:
            return {"error": f"unknown job kind {kind!r}"}
    except JpkiError as exc:
        return {"error": str(exc)}
    return out.to_json()


# --- worker process side ---------------------------------------------------------------------

_DB_URL: str | None = None
_ANCHORS: list[bytes] = []
_DERS: dict[str, bytes] = {}


def worker_init(db_url: str, anchors: list[bytes]) -> None:
    global _DB_URL, _ANCHORS
    _DB_URL, _ANCHORS = db_url, list(anchors)


def _db_ders(shas: list[str]) -> dict[str, bytes]:
    missing = [s for s in shas if s not in _DERS]
    if missing:
        from jpki.service.db import Database
        from jpki.service.state import crl_ders

        assert _DB_URL is not None
        db = Database(_DB_URL, pool_size=1)
        try:
            _DERS.update(crl_ders(db, missing))
        finally:
            db.close()
        if len(_DERS) > 256:  # keep only what is current
            for k in [k for k in _DERS if k not in shas]:
                del _DERS[k]
    return {s: _DERS[s] for s in shas if s in _DERS}


def worker_run(job: dict[str, Any]) -> dict[str, Any]:
    out = run_job(job, _ANCHORS, _db_ders(list(job.get("crls", []))))
    return {**out, "worker_pid": os.getpid()}


def worker_ping() -> int:
    """Warm-up: import the verifiers once per worker before the first request."""
    return os.getpid()


def _revocation_view(answers: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    return [(a.get("serial"), a.get("status"), a.get("reason")) for a in answers]


def recheck(
    record: dict[str, Any],
    anchors: dict[str, bytes],
    crls: dict[str, bytes],
) -> str | None:
    """Re-run a record's job offline; why it disagrees with the recorded verdict, or None."""
    job = record.get("job")
    if not isinstance(job, dict):
        return "record has no job"
    fps = record.get("anchors") or []
    missing_a = [fp for fp in fps if fp not in anchors]
    if missing_a:
        return f"trust anchor(s) not archived: {', '.join(f[:16] for f in missing_a)}"
    missing_c = [s for s in job.get("crls", []) if s not in crls]
    if missing_c:
        return f"CRL(s) not archived: {', '.join(s[:16] for s in missing_c)}"
    if job.get("kind") == "login" and job.get("nonce") is None:
        # Refused before any check (unknown / used / expired challenge): nothing to re-run.
        verdict = record.get("verdict", {})
        return None if verdict.get("status") == "invalid" else "challenge refusal not invalid"
    out = run_job(job, [anchors[fp] for fp in fps], {s: crls[s] for s in job.get("crls", [])})
    if "error" in out:
        return f"re-check failed: {out['error']}"
    want = record.get("verdict", {})
    if out["result"].get("status") != want.get("status"):
        return f"verdict {want.get('status')} recorded, re-check says {out['result'].get('status')}"
    if out["result"].get("account_key") != want.get("account_key"):
        return "account key differs on re-check"
    if _revocation_view(out["revocation"]) != _revocation_view(record.get("revocation", [])):
        return "revocation evidence differs on re-check"
    if sorted(out["crls_used"]) != sorted(record.get("crls_used", [])):
        return "CRLs used differ on re-check"
    return None
