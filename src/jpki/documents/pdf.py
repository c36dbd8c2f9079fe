"""PAdES signing with the card (pyHanko does the PDF structure).

Levels: B-B (signature only), B-T (plus an RFC 3161 signature timestamp), B-LT (plus the
revocation data in the document security store, DSS). ``subfilter="pkcs7"`` writes
``adbe.pkcs7.detached`` instead of ``ETSI.CAdES.detached`` for filings that require it.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from typing import Literal

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathValidationError, ValidationError

from jpki.card.jpki_ap import JpkiAp, KeyKind
from jpki.cert import JpkiCertificate
from jpki.documents.card import PinSource, open_signing_key, require_signing_key
from jpki.documents.tsa import (
    DEFAULT_TSA_TIMEOUT,
    TSA_ERRORS,
    probe_tsa,
    timestamper,
    tsa_failure,
)
from jpki.errors import DocumentError, UsageError

SubFilter = Literal["pades", "pkcs7"]
# pyHanko's reader lets many kinds escape on a damaged file (asserts, zlib.error, ...): at
# this boundary every one of them means "this input is bad", never a traceback.
_PDF_ERRORS = (Exception,)


def _open(pdf: bytes) -> IncrementalPdfFileWriter:
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    except _PDF_ERRORS as exc:
        raise DocumentError(f"not a PDF pyHanko can read: {exc}") from None
    if writer.prev.encrypted:
        raise DocumentError("the PDF is encrypted: decrypt it before signing")
    return writer


def _field_name(writer: IncrementalPdfFileWriter, name: str | None) -> str:
    """``name`` if usable; by default the first empty signature field, else a new one."""
    if name is not None and (not name or "." in name):
        raise UsageError("field name must be non-empty and without '.'")
    try:
        existing = list(fields.enumerate_sig_fields(writer.prev, filled_status=None))
    except _PDF_ERRORS as exc:
        raise DocumentError(f"cannot read the PDF's form fields: {exc}") from None
    for fq_name, value, _ref in existing:
        if name is None and value is None:
            return str(fq_name)
        if fq_name == name and value is not None:
            raise DocumentError(f"signature field {name!r} is already signed")
    if name is not None:
        return name
    taken = {str(n) for n, _v, _r in existing}
    n = 1
    while f"Signature{n}" in taken:
        n += 1
    return f"Signature{n}"


def _load_crls(crls: Sequence[bytes]) -> list[asn1_crl.CertificateList]:
    out = []
    for n, der in enumerate(crls, 1):
        try:
            c = asn1_crl.CertificateList.load(bytes(der))
            _ = c.native  # decode everything now, before the PIN
        except (ValueError, TypeError, KeyError) as exc:
            raise UsageError(f"CRL {n} is not a DER CRL: {exc}") from None
        out.append(c)
    return out


def sign_pdf(
    ap: JpkiAp,
    pdf: bytes,
    pin: PinSource,
    *,
    key: KeyKind | str = KeyKind.SIGNING,
    subfilter: SubFilter = "pades",
    field: str | None = None,
    tsa_url: str | None = None,
    tsa_timeout: float = DEFAULT_TSA_TIMEOUT,
    embed_revocation: bool = False,
    crls: Sequence[bytes] = (),
    trust_anchors: Sequence[JpkiCertificate] = (),
    reason: str | None = None,
    location: str | None = None,
    force: bool = False,
) -> bytes:
    """The PDF with one more signature (an incremental update), made on the card.

    ``embed_revocation`` (B-LT) validates the card's certificate against ``trust_anchors``
    with ``crls`` and embeds what it used in the DSS; it fails rather than embed nothing.
    Every check that needs no PIN runs before ``pin()`` is called.
    """
    require_signing_key(key)
    if subfilter not in ("pades", "pkcs7"):
        raise UsageError("subfilter must be 'pades' or 'pkcs7'")
    field_name = _field_name(_open(pdf), field)
    vc: ValidationContext | None = None
    if embed_revocation:
        if not crls:
            raise UsageError("--embed-revocation needs the CRL(s) to embed (--crl FILE)")
        if not trust_anchors:
            raise UsageError("--embed-revocation needs trust anchors to validate against")
        vc = ValidationContext(
            trust_roots=[asn1_x509.Certificate.load(a.der) for a in trust_anchors],
            crls=_load_crls(crls),
            allow_fetching=False,
            revocation_mode="hard-fail",
        )
    stamper = timestamper(tsa_url, timeout=tsa_timeout) if tsa_url else None
    if stamper is not None and tsa_url is not None:
        probe_tsa(stamper, tsa_url)
    signer = open_signing_key(ap, pin, force=force)
    meta = PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=(
            fields.SigSeedSubFilter.PADES
            if subfilter == "pades"
            else fields.SigSeedSubFilter.ADOBE_PKCS7_DETACHED
        ),
        embed_validation_info=embed_revocation,
        validation_context=vc,
        reason=reason,
        location=location,
    )
    pdf_signer = PdfSigner(meta, signer=signer, timestamper=stamper)
    out = io.BytesIO()
    try:
        asyncio.run(pdf_signer.async_sign_pdf(_open(pdf), output=out))
    except (PathValidationError, ValidationError, SigningError) as exc:
        # SigningError: pyHanko's pre-signing validation (B-LT) of the card's certificate.
        if isinstance(exc, SigningError) and exc.__cause__ is not None:
            exc = exc.__cause__  # type: ignore[assignment]
        raise DocumentError(
            f"the card's certificate does not validate with the revocation data given: {exc}"
        ) from None
    except TSA_ERRORS as exc:
        if tsa_url is None:
            raise
        # The card has signed (the PIN was right: no try is lost); nothing is returned.
        raise tsa_failure(tsa_url, exc) from None
    return out.getvalue()
