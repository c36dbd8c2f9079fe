"""Byte layouts of the card-info applications (text AP, visual AP), as this simulator writes them.

Pure functions from person data and keys to file contents; docs/simulator.md documents every
byte. The chip model calls these once when it loads a profile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki import wareki
from jpki.tlv import encode_length, tag_bytes


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


def _offset_table(header_len: int, items: Sequence[bytes], table_tag_len: int) -> bytes:
    """2-byte big-endian offsets of each item, from the start of the EF (the ``FF`` byte)."""
    pos = header_len + table_tag_len
    out = bytearray()
    for item in items:
        out += pos.to_bytes(2, "big")
        pos += len(item)
    return bytes(out)


def _container(tag: int, first_tag: int, items: Sequence[bytes], *, long_form: bool) -> bytes:
    """``tag { first_tag offsets; items... }`` with the offsets pointing at each item."""
    n_table = 2 * len(items)
    body_len_guess = sum(len(i) for i in items)
    # The header length depends on the total length, which depends on the table: settle it.
    table_tlv_len = len(tlv(first_tag, bytes(n_table), long_form=long_form))
    total = table_tlv_len + body_len_guess
    header_len = len(tlv(tag, bytes(total))) - total
    table = _offset_table(header_len, items, table_tlv_len)
    return tlv(tag, tlv(first_tag, table, long_form=long_form) + b"".join(items))


def sign_sha256(key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 (the issuer signatures in EF 0003 / DF28 / DF43 / CVC)."""
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class TextApFiles:
    """Contents of the text AP (券面入力補助AP) EFs."""

    ef0001: bytes  # My Number
    ef0002: bytes  # basic 4 information
    ef0003: bytes  # hashes + issuer signature
    ef0004: bytes  # card-verifiable certificate of the issuer key


def my_number_file(my_number: str) -> bytes:
    """EF 0001: ``FF 10 0C`` + 12 ASCII digits + ``FF FF`` (17 bytes)."""
    return b"\xff\x10\x0c" + my_number.encode("ascii") + b"\xff\xff"


def cvc(issuer: rsa.RSAPrivateKey, root: rsa.RSAPrivateKey, *, holder: bytes) -> bytes:
    """EF 0004: ``7F21 { 5F4E {42 CAR; 5F20 CHR; 90 e; 91 n}; 5F37 sig }``.

    The signature is PKCS#1 v1.5 SHA-256 by ``root`` over the whole ``5F4E`` TLV (tag to end).
    """
    pub = issuer.public_key().public_numbers()
    e = pub.e.to_bytes((pub.e.bit_length() + 7) // 8, "big")
    n = pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")
    body = tlv(
        0x5F4E,
        tlv(0x42, b"JPKITSTROOT") + tlv(0x5F20, holder) + tlv(0x90, e) + tlv(0x91, n),
    )
    return tlv(0x7F21, body + tlv(0x5F37, sign_sha256(root, body)))


def text_ap_files(
    *,
    my_number: str,
    name: str,
    address: str,
    birth_date: date,
    sex: int,
    issuer: rsa.RSAPrivateKey,
    cvc_root: rsa.RSAPrivateKey,
    long_form: bool = False,
) -> TextApFiles:
    """Build the four text AP files (see docs/simulator.md for the byte layout)."""
    ef1 = my_number_file(my_number)
    items = [
        tlv(0xDF22, name.encode("utf-8"), long_form=long_form),
        tlv(0xDF23, address.encode("utf-8"), long_form=long_form),
        tlv(0xDF24, f"{birth_date:%Y%m%d}".encode("ascii"), long_form=long_form),
        tlv(0xDF25, str(sex).encode("ascii"), long_form=long_form),
    ]
    ef2 = _container(0xFF20, 0xDF21, items, long_form=long_form)
    hashed = tlv(0xDF31, _sha(ef1)) + tlv(0xDF32, _sha(b"".join(items)))
    ef3 = tlv(0xFF30, hashed + tlv(0xDF33, sign_sha256(issuer, hashed)))
    ef4 = cvc(issuer, cvc_root, holder=b"JPKITSTTEXT")
    return TextApFiles(ef1, ef2, ef3, ef4)


@dataclass(frozen=True)
class VisualImages:
    """The images the visual AP serves (PNG, PNG, JPEG 2000, PNG, PNG)."""

    name_png: bytes
    address_png: bytes
    face_jp2: bytes
    security_code_png: bytes
    my_number_png: bytes


def spki_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signed_hashes(groups: Sequence[Sequence[bytes]]) -> bytes:
    """The message the visual AP signs: SHA-256 of each group's TLVs (tag to end), concatenated."""
    return b"".join(_sha(b"".join(group)) for group in groups)


def visual_ap_files(
    *,
    birth_date: date,
    sex: int,
    expiry_date: date,
    images: VisualImages,
    issuer: rsa.RSAPrivateKey,
) -> tuple[bytes, bytes]:
    """EF 0002 and EF 0005 of the visual AP (see docs/simulator.md for the byte layout)."""
    pub = tlv(0xDF24, spki_der(issuer))
    g1 = [
        tlv(0xDF22, f"{birth_date:%Y%m%d}".encode("ascii")),
        tlv(0xDF23, str(sex).encode("ascii")),
        pub,
    ]
    g2 = [tlv(0xDF25, images.name_png), tlv(0xDF26, images.address_png)]
    g3 = [tlv(0xDF27, images.face_jp2)]
    sig = tlv(0xDF28, sign_sha256(issuer, signed_hashes([g1, g2, g3])))
    tail = [
        tlv(0xDF29, f"{expiry_date:%Y%m%d}".encode("ascii")),
        tlv(0xDF2A, images.security_code_png),
    ]
    ef2 = _container(0xFF20, 0xDF21, [*g1, *g2, *g3, sig, *tail], long_form=False)
    mn = tlv(0xDF41, images.my_number_png)
    ef5 = tlv(
        0xFF40,
        mn
        + tlv(0xDF42, spki_der(issuer))
        + tlv(0xDF43, sign_sha256(issuer, signed_hashes([[mn]]))),
    )
    return ef2, ef5
