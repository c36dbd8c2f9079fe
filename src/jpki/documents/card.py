"""The card as a pyHanko ``Signer``: the private-key operation happens on the chip.

:func:`open_signing_key` runs the PIN-safety order every document signer here follows: the
caller's fallible preparation is done first, then the retry counter is read (free) and the
last-try guard applied, then the PIN is asked for (once), verified (once), and only then the
signing certificate read (the card guards it with the signing password).
"""

from __future__ import annotations

from collections.abc import Callable

from asn1crypto import algos as asn1_algos
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from jpki.card.jpki_ap import CertSlot, JpkiAp, KeyKind
from jpki.cert import CertKind, JpkiCertificate
from jpki.digestinfo import digest_info_for, hash_name
from jpki.errors import CardError, PinBlocked, PinGuardError, UsageError
from jpki.secret import Secret

#: PIN source: called once, after every step that can fail without the card's PIN.
PinSource = Callable[[], Secret]

_SIGNING_KINDS = (CertKind.SIGNING, CertKind.PHONE_SIGNING)


def require_signing_key(key: KeyKind | str) -> KeyKind:
    """The signing key, or ``UsageError``: documents are never signed with the auth key."""
    kind = KeyKind(key)
    if kind is not KeyKind.SIGNING:
        raise UsageError(
            "documents are signed with the signing key (署名用電子証明書, 'sign'): the "
            "user-authentication key proves who logs in, carries no nonRepudiation, and "
            "its signatures on documents have no legal presumption of authenticity"
        )
    return kind


class CardSigner(Signer):
    """pyHanko ``Signer`` whose RSA PKCS#1 v1.5 operation is COMPUTE DIGITAL SIGNATURE."""

    def __init__(
        self, ap: JpkiAp, certificate: bytes, ca_certificates: tuple[bytes, ...] = ()
    ) -> None:
        cert = asn1_x509.Certificate.load(certificate)
        self._ap = ap
        self._key_bytes = (cert.public_key.bit_size + 7) // 8
        registry = SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
            [asn1_x509.Certificate.load(c) for c in ca_certificates]
        )
        super().__init__(
            signing_cert=cert,
            cert_registry=registry,
            signature_mechanism=asn1_algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
            embed_roots=False,
        )

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if dry_run:  # pyHanko sizes the /Contents placeholder with this
            return bytes(self._key_bytes)
        digest_info = digest_info_for(data, hash_name(digest_algorithm.lower()))
        return self._ap.sign(KeyKind.SIGNING, digest_info)


def check_pin_usable(ap: JpkiAp, *, force: bool = False) -> None:
    """Free counter read: ``PinBlocked`` or ``PinGuardError`` before anyone types the PIN."""
    status = ap.pin_status(KeyKind.SIGNING)
    if status.blocked:
        raise PinBlocked()
    if status.last_try and not force:
        raise PinGuardError(1)


def open_signing_key(ap: JpkiAp, pin: PinSource, *, force: bool = False) -> CardSigner:
    """Guard, ask the PIN once, verify it once, read the certificates: a ready ``CardSigner``.

    Call it only after everything that can fail without the card (input parsed, timestamp
    authority reachable): a failure after this point cannot cost a PIN try any more, since the
    PIN was right, but it would make the user type it again for nothing.
    """
    check_pin_usable(ap, force=force)
    secret = pin()
    ap.verify_pin(KeyKind.SIGNING, secret, force=force)
    der = ap.read_certificate(CertSlot.SIGNING)
    cert = JpkiCertificate.load(der)
    if cert.kind not in _SIGNING_KINDS:
        raise CardError(
            f"the card's signing slot holds a {cert.kind.value} certificate, not a signing one"
        )
    ca = ap.read_certificate(CertSlot.SIGNING_CA)
    return CardSigner(ap, der, (ca,))
