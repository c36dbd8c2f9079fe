"""Verification jobs: a JSON-ready dict in, an outcome dict out.

The same job dict is what the audit record keeps, so ``jpki audit verify`` re-runs exactly
the request that was answered (:func:`run_job` with revocation replayed from the record's
evidence: the archived CRLs it names and its OCSP responses). In the service,
:func:`worker_run` executes jobs in the process pool against the revocation store, which
each worker opens once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from jpki.errors import JpkiError
from jpki.service import adapter
from jpki.service.adapter import (
    Context,
    OcspConfig,
    Outcome,
    RevocationStore,
    ServiceRevocation,
)
from jpki.service.audit import unb64

KINDS = ("login", "signature", "cms", "status-check", "document")


def _opt(job: dict[str, Any], name: str) -> bytes | None:
    value = job.get(name)
    return unb64(value) if value is not None else None


# One line per kind: which job fields go to which adapter call.
_RUNNERS: dict[str, Callable[[Context, dict[str, Any]], Outcome]] = {
    "login": lambda ctx, j: adapter.verify_login(
        ctx, j["challenge_id"], unb64(j["nonce"]), unb64(j["certificate"]), unb64(j["signature"])
    ),
    "signature": lambda ctx, j: adapter.verify_raw_signature(
        ctx,
        unb64(j["certificate"]),
        unb64(j["signature"]),
        data=_opt(j, "data"),
        digest=_opt(j, "digest"),
        hash_alg=j["hash"],
        purpose=j["purpose"],
    ),
    "cms": lambda ctx, j: adapter.verify_cms_blob(
        ctx, unb64(j["cms"]), content=_opt(j, "content"), purpose=j["purpose"]
    ),
    "status-check": lambda ctx, j: adapter.status_check(ctx, [unb64(c) for c in j["certificates"]]),
    "document": lambda ctx, j: adapter.verify_pdf_blob(ctx, unb64(j["pdf"])),
}


def run_job(
    job: dict[str, Any],
    anchors: list[bytes],
    crls: Sequence[bytes] | Mapping[str, bytes] | None = None,
    *,
    store: RevocationStore | None = None,
    ocsp_replay: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The outcome of one job; a ``JpkiError`` from bad input becomes ``{"error": why}``.

    Live with ``store``; replayed (offline) with ``crls`` (DER, or a mapping to DER) and
    ``ocsp_replay``.
    """
    if isinstance(crls, Mapping):
        crls = list(crls.values())
    runner = _RUNNERS.get(str(job.get("kind")))
    if runner is None:
        return {"error": f"unknown job kind {job.get('kind')!r}"}
    try:
        revocation = ServiceRevocation(
            soft_fail=bool(job.get("soft_fail", False)),
            ocsp=OcspConfig.from_json(job.get("ocsp")),
            store=store,
            crls=crls,
            ocsp_replay=ocsp_replay,
        )
        ctx = Context.make(anchors, datetime.fromisoformat(job["time"]), revocation)
        return runner(ctx, job).to_json()
    except JpkiError as exc:
        return {"error": str(exc)}


# --- worker process side ---------------------------------------------------------------------

_DB_URL: str | None = None
_ANCHORS: list[bytes] = []
_STORE: RevocationStore | None = None


def worker_init(db_url: str, anchors: list[bytes], nice: int = 0) -> None:
    """Process-pool initialiser: the database URL and trust anchors for this worker."""
    global _DB_URL, _ANCHORS
    _DB_URL, _ANCHORS = db_url, list(anchors)
    if nice > 0 and hasattr(os, "nice"):
        # Below the event loop's process: when the cores are short, the loop (health
        # checks, accepting, recording) runs first and the verifications take the rest.
        os.nice(nice)


def _store() -> RevocationStore:
    global _STORE
    if _STORE is None:
        assert _DB_URL is not None
        _STORE = RevocationStore(_DB_URL)
    return _STORE


def service_run(
    job: dict[str, Any], anchors: list[bytes], store: RevocationStore
) -> dict[str, Any]:
    """What a pool worker does for one job: :func:`run_job` live, plus the certificate
    summary the record keeps (parsed here, off the service's event loop)."""
    out = run_job(job, anchors, store=store)
    cert = job.get("certificate")
    if "error" not in out and isinstance(cert, str):
        try:
            out["summary"] = adapter.certificate_summary(unb64(cert))
        except (JpkiError, ValueError) as exc:
            return {"error": f"certificate: {exc}"}
    return out


def worker_run(job: dict[str, Any]) -> dict[str, Any]:
    """Run one verification job in a pool worker (tagged with the worker's pid)."""
    try:
        store = _store()
    except JpkiError as exc:  # the database is away: nothing can be decided
        return {"unavailable": str(exc), "worker_pid": os.getpid()}
    return {**service_run(job, _ANCHORS, store), "worker_pid": os.getpid()}


def worker_ping() -> int:
    """Warm-up: import the verifiers (and open the store) once per worker."""
    import contextlib

    with contextlib.suppress(JpkiError):
        _store()
    return os.getpid()


def _revocation_view(answers: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    return [(a.get("serial"), a.get("status"), a.get("reason")) for a in answers]


def _crl_key(ref: dict[str, Any]) -> tuple[Any, ...]:
    return (ref.get("issuer_key"), ref.get("number"), ref.get("delta"), ref.get("crl_id"))


def recheck(
    record: dict[str, Any],
    anchors: dict[str, bytes],
    crls: dict[tuple[str, int | None], list[bytes]],
) -> str | None:
    """Re-run a record's job offline; why it disagrees with the recorded verdict, or None.

    ``crls`` maps (issuer key hex, CRL number) to the archived DER of those CRLs.
    """
    job = record.get("job")
    if not isinstance(job, dict):
        return "record has no job"
    fps = record.get("anchors") or []
    missing_a = [fp for fp in fps if fp not in anchors]
    if missing_a:
        return f"trust anchor(s) not archived: {', '.join(f[:16] for f in missing_a)}"
    evidence = record.get("evidence") or {}
    if not isinstance(evidence, dict):
        return "record evidence is not in this version's form"
    refs = list(evidence.get("crls") or [])
    ders: list[bytes] = []
    for ref in refs:
        found = crls.get((ref.get("issuer_key"), ref.get("number")))
        if not found:
            return f"CRL {str(ref.get('issuer_key'))[:16]} #{ref.get('number')} not archived"
        ders += [d for d in found if d not in ders]
    if job.get("kind") == "login" and job.get("nonce") is None:
        # Refused before any check (unknown / used / expired challenge): nothing to re-run.
        verdict = record.get("verdict", {})
        return None if verdict.get("status") == "invalid" else "challenge refusal not invalid"
    out = run_job(
        job,
        [anchors[fp] for fp in fps],
        crls=ders,
        ocsp_replay=list(evidence.get("ocsp") or []),
    )
    if "error" in out:
        return f"re-check failed: {out['error']}"
    want = record.get("verdict", {})
    if out["result"].get("status") != want.get("status"):
        return f"verdict {want.get('status')} recorded, re-check says {out['result'].get('status')}"
    if out["result"].get("account_key") != want.get("account_key"):
        return "account key differs on re-check"
    if _revocation_view(out["revocation"]) != _revocation_view(record.get("revocation", [])):
        return "revocation evidence differs on re-check"
    if len(out["evidence"]["ocsp"]) != len(evidence.get("ocsp") or []):
        return "OCSP evidence differs on re-check"
    return None
