"""CMS SignedData (RFC 5652) made with the card's signing key.

Signed attributes: contentType, messageDigest, signingTime, signingCertificateV2 (RFC 5035)
and cmsAlgorithmProtection (RFC 6211); the card's certificate (and its CA) are included.
With a TSA URL the signer gets an RFC 3161 signature timestamp (unsigned attribute).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes

from jpki.card.jpki_ap import JpkiAp, KeyKind
from jpki.documents.card import PinSource, open_signing_key, require_signing_key
from jpki.documents.tsa import (
    DEFAULT_TSA_TIMEOUT,
    TSA_ERRORS,
    probe_tsa,
    timestamper,
    tsa_failure,
)
from jpki.errors import UsageError


def sign_cms(
    ap: JpkiAp,
    data: bytes,
    pin: PinSource,
    *,
    key: KeyKind | str = KeyKind.SIGNING,
    attached: bool = False,
    tsa_url: str | None = None,
    tsa_timeout: float = DEFAULT_TSA_TIMEOUT,
    digest: str = "sha256",
    force: bool = False,
) -> bytes:
    """DER CMS SignedData over ``data`` (detached unless ``attached``), signed on the card.

    Order: key check, TSA probe, PIN guard, ``pin()`` once, VERIFY once, sign, timestamp.
    """
    require_signing_key(key)
    if digest not in ("sha256", "sha384", "sha512"):
        raise UsageError("digest must be sha256, sha384 or sha512")
    stamper = timestamper(tsa_url, timeout=tsa_timeout) if tsa_url else None
    if stamper is not None and tsa_url is not None:
        probe_tsa(stamper, tsa_url)
    signer = open_signing_key(ap, pin, force=force)
    attrs = PdfCMSSignedAttributes(signing_time=datetime.now(UTC))
    job = signer.async_sign_general_data(
        data,
        digest,
        detached=not attached,
        timestamper=stamper,
        signed_attr_settings=attrs,
    )
    try:
        content_info = asyncio.run(job)
    except TSA_ERRORS as exc:
        if tsa_url is None:
            raise
        # The card has signed (the PIN was right: no try is lost); nothing is returned.
        raise tsa_failure(tsa_url, exc) from None
    return bytes(content_info.dump())
