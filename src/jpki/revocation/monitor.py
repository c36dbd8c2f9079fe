"""現況確認 (status monitoring): which stored signing certificates were revoked since last time.

A relying party keeps its customers' signing certificates; a revocation of one usually means the
customer's basic 4 information changed (move, name change) or the customer died. Each newly
revoked certificate is reported once; what was reported is remembered in the store's database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from jpki._files import MAX_CERT_FILE, InputFileError, read_regular_file, scan_directory
from jpki.cert import serial_hex
from jpki.errors import CertificateError, UsageError
from jpki.revocation.index import RevocationReason
from jpki.revocation.results import RevocationStatus, issued_by

if TYPE_CHECKING:
    from jpki.revocation.store import RevocationStore

# What a JPKI signing-certificate revocation reason means to a relying party (CPS reasons).
REASON_MEANING: dict[RevocationReason, str] = {
    RevocationReason.AFFILIATION_CHANGED: "basic information changed (move, name change)",
    RevocationReason.CESSATION_OF_OPERATION: "no longer needed (e.g. death, card returned)",
    RevocationReason.KEY_COMPROMISE: "key compromise (e.g. card lost or stolen)",
    RevocationReason.SUPERSEDED: "renewed (a new certificate was issued)",
    RevocationReason.CERTIFICATE_HOLD: "suspended",
    RevocationReason.UNSPECIFIED: "unspecified (e.g. destroyed before delivery)",
    RevocationReason.CA_COMPROMISE: "CA compromise",
    RevocationReason.PRIVILEGE_WITHDRAWN: "privilege withdrawn",
    RevocationReason.REMOVE_FROM_CRL: "released from hold",
    RevocationReason.AA_COMPROMISE: "attribute authority compromise",
}

CERT_SUFFIXES = (".pem", ".der", ".cer", ".crt")


@dataclass(frozen=True)
class MonitorEvent:
    """One monitored certificate file that is newly revoked or of unknown status."""

    path: str
    serial: int | None  # None when the file could not be read as a certificate
    subject: str
    fingerprint: str
    status: RevocationStatus
    reason: RevocationReason | None
    meaning: str
    revoked_at: datetime | None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON form: path, serial_hex, subject, fingerprint, status, reason, times."""
        return {
            "path": self.path,
            "serial_hex": None if self.serial is None else serial_hex(self.serial),
            "subject": self.subject,
            "fingerprint_sha256": self.fingerprint,
            "status": self.status.value,
            "reason": self.reason.value if self.reason else None,
            "meaning": self.meaning,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class MonitorReport:
    """What one ``monitor`` run found (``to_json`` is the ``--json`` output)."""

    checked: int
    newly_revoked: tuple[MonitorEvent, ...]
    already_reported: int
    unknown: tuple[MonitorEvent, ...]

    def to_json(self) -> dict[str, Any]:
        """The JSON form: how many were checked, newly revoked, already reported, unknown."""
        return {
            "checked": self.checked,
            "newly_revoked": [e.to_json() for e in self.newly_revoked],
            "already_reported": self.already_reported,
            "unknown": [e.to_json() for e in self.unknown],
        }


def _load_cert(path: Path) -> x509.Certificate:
    data = read_regular_file(path, max_bytes=MAX_CERT_FILE)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"{path}: not a certificate ({exc})") from None


def _issuer_for(cert: x509.Certificate, issuers: list[x509.Certificate]) -> x509.Certificate | None:
    # Several generations share a DN: the one whose key verifies the certificate. issued_by
    # is cached, so store.check's own issuer check for the same pair costs nothing more.
    return next((ca for ca in issuers if issued_by(cert, ca)), None)


#: Called with each newly revoked certificate's notice; it must have WRITTEN (and flushed)
#: the notice when it returns: only then is the notice marked reported.
Deliver = Callable[["MonitorEvent"], None]


def monitor(
    store: RevocationStore,
    cert_dir: Path,
    *,
    at: datetime,
    issuers: list[x509.Certificate] | None = None,
    deliver: Deliver | None = None,
    peek: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> MonitorReport:
    """Check every certificate file in ``cert_dir`` against the store's current CRLs.

    At-least-once: a notice is marked reported only after it was delivered. With ``deliver``
    each new notice is passed to it and marked as soon as it returns; without, nothing is
    marked here: the caller writes ``report.newly_revoked`` and then calls
    :func:`mark_delivered`. ``peek`` never marks anything (shows what would be reported).
    A certificate reported while on hold is reported again when it is revoked for good.

    ``issuers`` are the candidate CA certificates (several generations share a DN: the one
    whose key verifies the certificate is used); by default the signers of the stored CRLs.
    ``progress(checked, total)`` is called after each certificate.
    """
    if not cert_dir.is_dir():
        raise UsageError(f"not a directory: {cert_dir}")
    # Regular files only: a FIFO or /dev/zero symlink named *.pem must not hang the run.
    paths = scan_directory(cert_dir, CERT_SUFFIXES)
    cands = list(issuers) if issuers else store.signers()
    new: list[MonitorEvent] = []
    unknown: list[MonitorEvent] = []
    seen = 0
    for done, path in enumerate(paths, 1):
        if progress is not None:
            progress(done - 1, len(paths))
        try:
            cert = _load_cert(path)
        except (CertificateError, InputFileError, OSError) as exc:
            # One bad file must not hide the status of every other customer's certificate.
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            unknown.append(
                MonitorEvent(
                    str(path),
                    None,
                    "",
                    "",
                    RevocationStatus.UNKNOWN,
                    None,
                    "",
                    None,
                    f"unreadable certificate file: {why}",
                )
            )
            continue
        fp = cert.fingerprint(hashes.SHA256()).hex()
        ca = _issuer_for(cert, cands)
        if ca is None:
            unknown.append(
                _event(path, cert, fp, RevocationStatus.UNKNOWN, None, None, "no issuer")
            )
            continue
        res = store.check(cert, ca, at=at)
        if res.status is RevocationStatus.UNKNOWN:
            unknown.append(_event(path, cert, fp, res.status, None, None, res.detail))
        elif res.status is RevocationStatus.REVOKED:
            final = res.reason is not RevocationReason.CERTIFICATE_HOLD
            if store.already_reported(fp, final=final):
                seen += 1
                continue
            ev = _event(path, cert, fp, res.status, res.reason, res.revoked_at, res.source)
            new.append(ev)
            if deliver is not None:
                deliver(ev)  # written and flushed when it returns
                if not peek:
                    mark_delivered(store, [ev])
        elif not peek and store.reported_state(fp) == "hold":
            # released from hold: a later hold or revocation is news again
            store.clear_reported(fp)
    if progress is not None:
        progress(len(paths), len(paths))
    return MonitorReport(len(paths), tuple(new), seen, tuple(unknown))


def mark_delivered(store: RevocationStore, events: Iterable[MonitorEvent]) -> None:
    """Remember that these notices were delivered (call only after writing them out)."""
    for ev in events:
        if ev.serial is None:
            continue
        store.mark_reported(
            ev.fingerprint,
            ev.serial,
            ev.reason.value if ev.reason else None,
            ev.revoked_at,
            final=ev.reason is not RevocationReason.CERTIFICATE_HOLD,
        )


def _event(
    path: Path,
    cert: x509.Certificate,
    fp: str,
    status: RevocationStatus,
    reason: RevocationReason | None,
    revoked_at: datetime | None,
    detail: str,
) -> MonitorEvent:
    meaning = REASON_MEANING.get(reason, "") if reason else ""
    return MonitorEvent(
        str(path),
        cert.serial_number,
        cert.subject.rfc4514_string(),
        fp,
        status,
        reason,
        meaning,
        revoked_at,
        detail,
    )
