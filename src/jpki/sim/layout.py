"""Byte layouts of the card-info applications (text AP, visual AP), as a real card stores them.

Pure functions from person data and keys to physical file contents, written from the layouts in
the card protocol spec (§5, §6): docs/simulator.md documents every byte. The chip model calls
these once when it loads a profile.

Signatures are made the real way: a CVCA key signs each AP's card-verifiable certificate
(EF ``0004``), the key that CVC certifies signs the AP's records, and the card keys inside the
records (text AP DF51, visual AP DF12/DF24/DF42) only sign presence challenges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki import wareki
from jpki.tlv import encode_length, tag_bytes

SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
# DigestInfo(sha256, 96 bytes): the card face signature covers three digests in one DigestInfo.
_SHA256_DI_96_PREFIX = bytes.fromhex("3071300d060960864801650304020105000460")


def era_yymmdd(d: date) -> str:
    """Birth date as Japanese era year + month + day, 6 digits (e.g. 1985-04-01 → ``600401``)."""
    return wareki.era_yymmdd(d)


def collation_b(birth: date, expiry_year: int, security_code: str) -> str:
    """Collation B: era-year YYMMDD + expiry year (4 digits) + security code (4 digits)."""
    return f"{era_yymmdd(birth)}{expiry_year:04d}{security_code}"


def tlv(tag: int, value: bytes, *, long_form: bool = False) -> bytes:
    """One BER-TLV; ``long_form`` writes lengths below 128 as ``81 xx`` (legal BER, not DER)."""
    n = len(value)
    length = bytes([0x81, n]) if long_form and n < 0x80 else encode_length(n)
    return tag_bytes(tag) + length + value


def key_id(digits: str, serial: str = "001", pad: bytes = b"\x00\x00\x00\x00") -> bytes:
    """16-byte CVC key id: 7 ASCII digits, ``08 05``, 3 ASCII digits, 4 padding bytes."""
    if len(digits) != 7 or not digits.isdigit() or len(serial) != 3 or not serial.isdigit():
        raise ValueError("a key id is 7 digits / 3 digits")
    if len(pad) != 4:
        raise ValueError("key id padding is 4 bytes")
    return digits.encode("ascii") + b"\x08\x05" + serial.encode("ascii") + pad


def key_id_text(kid: bytes) -> str:
    """``7000033/001`` for a 16-byte key id (hex for anything else)."""
    if len(kid) == 16 and kid[7:9] == b"\x08\x05" and kid[:7].isdigit() and kid[9:12].isdigit():
        return f"{kid[:7].decode()}/{kid[9:12].decode()}"
    return kid.hex().upper()


def _uint(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")


def rsa_tlvs(key: rsa.RSAPublicKey) -> bytes:
    """A public key the card's way: ``90`` exponent, ``91`` modulus (265 bytes for RSA-2048)."""
    pub = key.public_numbers()
    return tlv(0x90, _uint(pub.e)) + tlv(0x91, _uint(pub.n))


def sign_sha256(key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 (EF 0003 DF33, DF13, DF43, DF52, CVCs)."""
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def cvc(
    *, issuer_id: bytes, subject_id: bytes, subject: rsa.RSAPublicKey, cvca: rsa.RSAPrivateKey
) -> bytes:
    """EF 0004: ``7F21 { 5F4E <issuer id ‖ subject id ‖ 90/91 key>; 5F37 <signature> }``.

    The signature is PKCS#1 v1.5 SHA-256 by the CVCA key over the 5F4E value (no header).
    """
    body = issuer_id + subject_id + rsa_tlvs(subject)
    return tlv(0x7F21, tlv(0x5F4E, body) + tlv(0x5F37, sign_sha256(cvca, body)))


def _offset_container(tag: int, items: Sequence[bytes], *, long_form: bool) -> bytes:
    """``tag { DF?1 offsets; items... }``: one u16 per item, its offset from the file's first byte.

    The table tag is the container's second byte with ``DF`` in front (FF20 → DF21).
    """
    table_tag = 0xDF00 | ((tag & 0xFF) + 1)
    table_len = len(tlv(table_tag, bytes(2 * len(items)), long_form=long_form))
    total = table_len + sum(len(i) for i in items)
    header_len = len(tlv(tag, bytes(total))) - total
    pos = header_len + table_len
    table = bytearray()
    for item in items:
        table += pos.to_bytes(2, "big")
        pos += len(item)
    return tlv(tag, tlv(table_tag, bytes(table), long_form=long_form) + b"".join(items))


def pad_physical(content: bytes, *, block: int = 32, filler: int = 0xFF) -> bytes:
    """The stored file: content then filler up to a multiple of ``block`` (fixed-size EFs)."""
    n = -len(content) % block
    return content + bytes([filler]) * n


@dataclass(frozen=True)
class CardInfoKeys:
    """The keys behind one card-info AP.

    ``cvca`` signs the CVC in EF 0004, which certifies ``ap``; ``ap`` signs the records; ``card``
    (the key the records carry) signs presence challenges.
    """

    cvca: rsa.RSAPrivateKey
    cvca_id: bytes
    ap: rsa.RSAPrivateKey
    ap_id: bytes
    card: rsa.RSAPrivateKey


@dataclass(frozen=True)
class TextApFiles:
    """Physical contents of the text AP (券面入力補助AP) EFs."""

    ef0001: bytes  # My Number, 17 bytes
    ef0002: bytes  # basic 4 information
    ef0003: bytes  # digests + signature
    ef0004: bytes  # CVC
    ef0005: bytes  # AP basic data
    ef0006: bytes  # secure-messaging key
    ef0007: bytes  # the AP's own key, signed


def my_number_file(my_number: str) -> bytes:
    """EF 0001: ``FF 10 0C`` + 12 ASCII digits + ``FF FF`` (17 bytes)."""
    return b"\xff\x10\x0c" + my_number.encode("ascii") + b"\xff\xff"


def text_ap_files(
    *,
    my_number: str,
    name: str,
    address: str,
    birth_date: date,
    sex: int,
    keys: CardInfoKeys,
    session_key: rsa.RSAPublicKey,
    basic_key_id: bytes,
    long_form: bool = False,
) -> TextApFiles:
    """Build the text AP files (see docs/simulator.md for the byte layout)."""
    ef1 = my_number_file(my_number)
    items = [
        tlv(0xDF22, name.encode("utf-8"), long_form=long_form),
        tlv(0xDF23, address.encode("utf-8"), long_form=long_form),
        tlv(0xDF24, f"{birth_date:%Y%m%d}".encode("ascii"), long_form=long_form),
        tlv(0xDF25, str(sex).encode("ascii"), long_form=long_form),
    ]
    ef2 = pad_physical(_offset_container(0xFF20, items, long_form=long_form))
    covered = tlv(0xDF31, _sha(ef1)) + tlv(0xDF32, _sha(b"".join(items)))
    ef3 = tlv(0xFF30, covered + tlv(0xDF33, sign_sha256(keys.ap, covered)))
    ef4 = cvc(
        issuer_id=keys.cvca_id, subject_id=keys.ap_id, subject=keys.ap.public_key(), cvca=keys.cvca
    )
    trailing = _sha(b"text-ap-basic-data|" + keys.ap_id) + b"\xff" * 96
    ef5 = tlv(
        0xFF40,
        tlv(0xDF41, bytes.fromhex("01030E01")) + tlv(0xDF42, basic_key_id) + tlv(0xDF43, trailing),
    )
    ef6 = tlv(0xA1, rsa_tlvs(session_key))
    own = tlv(0xDF51, rsa_tlvs(keys.card.public_key()))
    ef7 = tlv(0xFF50, own + tlv(0xDF52, sign_sha256(keys.ap, own)))
    return TextApFiles(ef1, ef2, ef3, ef4, ef5, ef6, ef7)


@dataclass(frozen=True)
class VisualImages:
    """The images the visual AP serves (PNG, PNG, JPEG 2000, PNG, PNG)."""

    name_png: bytes
    address_png: bytes
    face_jp2: bytes
    security_code_png: bytes
    my_number_png: bytes


@dataclass(frozen=True)
class VisualApFiles:
    """Physical contents of the visual AP (券面事項確認AP) EFs."""

    ef0001: bytes  # age record
    ef0002: bytes  # card face
    ef0003: bytes  # AP basic data
    ef0004: bytes  # CVC
    ef0005: bytes  # My Number image
    ef0006: bytes  # unknown content


def pkcs1_type1_sign(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """RSA over ``00 01 FF.. 00 || data`` (nothing hashed); ``data`` ≤ k − 11 bytes."""
    k = (key.key_size + 7) // 8
    if not 1 <= len(data) <= k - 11:
        raise ValueError("data too long for PKCS#1 v1.5 type-1 padding")
    em = b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + data
    priv = key.private_numbers()
    m = int.from_bytes(em, "big")
    # CRT: about 3x faster than pow(m, d, n).
    s1 = pow(m, priv.dmp1, priv.p)
    s2 = pow(m, priv.dmq1, priv.q)
    h = (priv.iqmp * (s1 - s2)) % priv.p
    return (s2 + h * priv.q).to_bytes(k, "big")


def card_face_digest_info(groups: Sequence[Sequence[bytes]]) -> bytes:
    """``DigestInfo(sha256, h1 ‖ h2 ‖ h3)``: each group's TLVs hashed, the 96 bytes not again."""
    digests = b"".join(_sha(b"".join(group)) for group in groups)
    if len(digests) != 96:
        raise ValueError("the card face signature covers exactly three groups")
    return _SHA256_DI_96_PREFIX + digests


def visual_ap_files(
    *,
    birth_date: date,
    sex: int,
    expiry_date: date,
    municipality_code: str,
    images: VisualImages,
    keys: CardInfoKeys,
) -> VisualApFiles:
    """Build the visual AP files (see docs/simulator.md for the byte layout)."""
    card_key = tlv(0xDF12, rsa_tlvs(keys.card.public_key()))
    birth = f"{birth_date:%Y%m%d}".encode("ascii")
    age = tlv(0xDF11, birth) + card_key
    ef1 = tlv(0xFF10, age + tlv(0xDF13, sign_sha256(keys.ap, age)))

    g1 = [
        tlv(0xDF22, birth),
        tlv(0xDF23, str(sex).encode("ascii")),
        tlv(0xDF24, rsa_tlvs(keys.card.public_key())),
    ]
    g2 = [tlv(0xDF25, images.name_png), tlv(0xDF26, images.address_png)]
    g3 = [tlv(0xDF27, images.face_jp2)]
    sig = tlv(0xDF28, pkcs1_type1_sign(keys.ap, card_face_digest_info([g1, g2, g3])))
    tail = [
        tlv(0xDF29, f"{expiry_date:%Y%m%d}".encode("ascii")),
        tlv(0xDF2A, images.security_code_png),
    ]
    ef2 = pad_physical(_offset_container(0xFF20, [*g1, *g2, *g3, sig, *tail], long_form=False))

    if len(municipality_code) != 5 or not municipality_code.isdigit():
        raise ValueError("municipality code is 5 digits")
    opaque = _sha(b"visual-ap-basic-data|" + keys.ap_id) * 8  # 256 bytes of unknown meaning
    ef3 = tlv(
        0xFF30,
        tlv(0xDF31, bytes.fromhex("01030E01"))
        + tlv(0xDF32, keys.ap_id)
        + tlv(0xDF33, b"\x01")
        + tlv(0xDF34, municipality_code.encode("ascii"))
        + tlv(0xDF35, keys.ap_id + opaque),
    )
    ef4 = cvc(
        issuer_id=keys.cvca_id, subject_id=keys.ap_id, subject=keys.ap.public_key(), cvca=keys.cvca
    )
    mn = tlv(0xDF41, images.my_number_png) + tlv(0xDF42, rsa_tlvs(keys.card.public_key()))
    ef5 = pad_physical(tlv(0xFF40, mn + tlv(0xDF43, sign_sha256(keys.ap, mn))))
    ef6 = b"\xff" * 32  # content unknown (spec §6): an unwritten fixed-size file
    return VisualApFiles(ef1, ef2, ef3, ef4, ef5, ef6)
