"""Card-verifiable certificates (EF 0004 of the card-info APs) and the CVCA trust chain.

Layout (card-protocol.md §5.1, as read off a JPKI test card)::

    7F21 { 5F4E <297 bytes: issuer key id[16] ‖ subject key id[16] ‖ 90 e ‖ 91 n>;
           5F37 <PKCS#1 v1.5 SHA-256 signature over the 297 bytes> }

GET DATA returns the template's content without ``7F21``; both forms parse. The signing CVCA
key is not on the card: it is looked up by the full 16-byte issuer key id in a
:class:`jpki.trust.cvca.CvcaKeyring`.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.errors import JpkiError, ParseError
from jpki.tlv import decode_one, iter_tlv
from jpki.trust.cvca import CvcaKeyring, hierarchy_of, key_id_text

TAG_CVC = 0x7F21
TAG_CVC_BODY = 0x5F4E
TAG_CVC_SIGNATURE = 0x5F37
TAG_EXPONENT = 0x90
TAG_MODULUS = 0x91
KEY_ID_LEN = 16
#: 16 + 16 + ``90 03 010001`` + ``91 82 0100 <256>``: the body of every CVC seen on a card.
BODY_LEN = 297
#: ``DigestInfo`` prefix for SHA-256 (the length bytes are filled in per payload).
_SHA256_ALG = bytes.fromhex("300d060960864801650304020105 00".replace(" ", ""))


class IntegrityStatus(enum.StrEnum):
    """Tri-state verdict of a card-info integrity check."""

    VALID = "valid"
    INVALID = "invalid"
    INDETERMINATE = "indeterminate"


@dataclass(frozen=True)
class IntegrityResult:
    """Outcome of checking card data along CVCA → EF 0004 CVC → record signatures.

    ``valid`` only when all three verify; ``indeterminate`` when the CVCA key is unknown or a
    layout cannot be read (nothing was decided); ``invalid`` only for a signature or digest
    that really fails. ``cvca`` is the issuer key id (``6000033/001``) when the CVC was read.
    """

    status: IntegrityStatus
    reasons: tuple[str, ...] = ()
    cvca: str | None = None
    hierarchy: str | None = None

    @property
    def valid(self) -> bool:
        """True only when the status is VALID (indeterminate is not valid)."""
        return self.status is IntegrityStatus.VALID

    def as_dict(self) -> dict[str, object]:
        """The JSON form: status, CVCA key id, hierarchy and reasons."""
        return {
            "status": self.status.value,
            "cvca": self.cvca,
            "hierarchy": self.hierarchy,
            "reasons": list(self.reasons),
        }


def parse_rsa_key(raw: bytes, what: str = "public key") -> rsa.RSAPublicKey:
    """An RSA key as the card stores it: ``90`` exponent and ``91`` modulus TLVs."""
    found: dict[int, bytes] = {}
    try:
        for item in iter_tlv(raw, skip_padding=True):
            found.setdefault(item.tag, item.value)
    except JpkiError as exc:
        raise ParseError(f"{what}: {exc}") from None
    if TAG_EXPONENT not in found or TAG_MODULUS not in found:
        raise ParseError(f"{what} lacks 90 (exponent) or 91 (modulus)")
    e = int.from_bytes(found[TAG_EXPONENT], "big")
    n = int.from_bytes(found[TAG_MODULUS], "big")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError:
        raise ParseError(f"{what} is not a usable RSA key") from None


def same_key(a: rsa.RSAPublicKey, b: rsa.RSAPublicKey) -> bool:
    """Whether two RSA public keys are the same key."""
    return a.public_numbers() == b.public_numbers()


def pkcs1_sha256_ok(key: rsa.RSAPublicKey, signature: bytes, message: bytes) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-256 over ``message``."""
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def sha256_digest_info(digest: bytes) -> bytes:
    """``DigestInfo(sha256, digest)`` for any digest length (the card face puts 96 bytes in)."""
    inner = _SHA256_ALG + b"\x04" + bytes([len(digest)]) + digest
    if len(digest) > 0x7F or len(inner) > 0x7F:
        raise ValueError("digest too long for a short-form DigestInfo")
    return b"\x30" + bytes([len(inner)]) + inner


def pkcs1_payload_ok(key: rsa.RSAPublicKey, signature: bytes, payload: bytes) -> bool:
    """RSASSA-PKCS1-v1_5 whose padded payload is exactly ``payload`` (nothing hashed here).

    The whole type-1 block is checked by ``recover_data_from_signature``; the payload must
    then equal ``payload`` byte for byte.
    """
    try:
        recovered = key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
    except (InvalidSignature, ValueError):
        return False
    return recovered == payload


def sha256(data: bytes) -> bytes:
    """SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class CardVerifiableCertificate:
    """One CVC: who signed it, which key it certifies, and over which bytes."""

    issuer_key_id: bytes
    subject_key_id: bytes
    public_key: rsa.RSAPublicKey = field(repr=False)
    #: Exactly the 297 bytes the signature covers (the 5F4E value without its header).
    body: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    @property
    def issuer(self) -> str:
        """The signer's key id as text (``5000033/001``, hex when not that shape)."""
        return key_id_text(self.issuer_key_id)

    @property
    def subject(self) -> str:
        """The certified key's id as text (``5000033/001``, hex when not that shape)."""
        return key_id_text(self.subject_key_id)

    @classmethod
    def parse(cls, raw: bytes) -> CardVerifiableCertificate:
        """Parse with or without the ``7F21`` template; filler after it is ignored."""
        try:
            content = raw
            if raw[:2] == b"\x7f\x21":
                outer, _ = decode_one(raw, 0)
                content = outer.value
            parts: dict[int, bytes] = {}
            for item in iter_tlv(content, skip_padding=True):
                parts.setdefault(item.tag, item.value)
        except JpkiError as exc:
            raise ParseError(f"card-verifiable certificate: {exc}") from None
        body = parts.get(TAG_CVC_BODY)
        signature = parts.get(TAG_CVC_SIGNATURE)
        if body is None or signature is None:
            raise ParseError("card-verifiable certificate lacks 5F4E (body) or 5F37 (signature)")
        if len(body) != BODY_LEN:
            raise ParseError(
                f"card-verifiable certificate body is {len(body)} bytes, not {BODY_LEN}"
            )
        ids = 2 * KEY_ID_LEN
        key = parse_rsa_key(body[ids:], "certified key")
        return cls(body[:KEY_ID_LEN], body[KEY_ID_LEN:ids], key, body, signature)

    def verify_with(self, key: rsa.RSAPublicKey) -> bool:
        """True when ``key`` verifies the signature over the body (PKCS#1 v1.5, SHA-256)."""
        return pkcs1_sha256_ok(key, self.signature, self.body)


@dataclass(frozen=True)
class ChainStep:
    """CVCA → CVC: the certified key when the CVC verified, else a final result."""

    key: rsa.RSAPublicKey | None
    result: IntegrityResult | None
    cvca: str | None
    hierarchy: str | None


def check_cvc(raw: bytes, keyring: CvcaKeyring, where: str) -> ChainStep:
    """Parse the EF 0004 CVC and verify it with the CVCA key its issuer key id names."""
    try:
        cvc = CardVerifiableCertificate.parse(raw)
    except ParseError as exc:
        result = IntegrityResult(IntegrityStatus.INDETERMINATE, (f"{where}: {exc}",))
        return ChainStep(None, result, None, None)
    cvca = keyring.get(cvc.issuer_key_id)
    name, hierarchy = cvc.issuer, hierarchy_of(cvc.issuer_key_id)
    if cvca is None:
        reason = (
            f"{where}: CVCA key {name} is not known (add it with --cvca-keys); nothing was checked"
        )
        result = IntegrityResult(IntegrityStatus.INDETERMINATE, (reason,), name, hierarchy)
        return ChainStep(None, result, name, hierarchy)
    if not cvc.verify_with(cvca.public_key):
        reason = f"{where}: the CVC signature does not verify with CVCA key {name}"
        result = IntegrityResult(IntegrityStatus.INVALID, (reason,), name, hierarchy)
        return ChainStep(None, result, name, hierarchy)
    return ChainStep(cvc.public_key, None, name, hierarchy)


def chain_result(step: ChainStep, failures: Iterable[str], checked: str) -> IntegrityResult:
    """The result once the records were checked with the CVC-certified key."""
    if step.result is not None:
        return step.result
    bad = tuple(failures)
    if bad:
        return IntegrityResult(IntegrityStatus.INVALID, bad, step.cvca, step.hierarchy)
    reason = f"{checked} verify along CVCA {step.cvca} ({step.hierarchy}) → EF 0004 CVC"
    return IntegrityResult(IntegrityStatus.VALID, (reason,), step.cvca, step.hierarchy)


def indeterminate(step: ChainStep, reason: str) -> IntegrityResult:
    """An indeterminate integrity result with one reason."""
    return IntegrityResult(IntegrityStatus.INDETERMINATE, (reason,), step.cvca, step.hierarchy)


__all__ = [
    "BODY_LEN",
    "CardVerifiableCertificate",
    "ChainStep",
    "IntegrityResult",
    "IntegrityStatus",
    "chain_result",
    "check_cvc",
    "parse_rsa_key",
    "pkcs1_payload_ok",
    "pkcs1_sha256_ok",
    "same_key",
    "sha256_digest_info",
]
