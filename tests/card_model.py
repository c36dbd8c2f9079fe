"""A small My Number card model written in the tests from card-protocol.md (not the simulator).

It answers the APDUs the client and the conformance checks send, with the real-card behaviours
(SELECT MF, 63C0 on a blocked key, the access split, EF 0006 of 160 bytes, EF 0008, P1 00-05,
CVCs signed by a test CVCA, card-info AP challenge signatures). Its record files are built here
from the spec's byte layouts; ``flaws`` switch single behaviours off to make broken cards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.tlv import encode_length
from jpki.transport.base import Connection
from jpki.trust.cvca import CvcaKey, CvcaKeyring

JPKI = bytes.fromhex("D392F000260100000001")
TEXT = bytes.fromhex("D3921000310001010408")
VISUAL = bytes.fromhex("D3921000310001010402")
CVCA_ID = b"7000033\x08\x05001" + bytes(4)
ATR = bytes.fromhex("3BE000FF8131FE4514")
MY_NUMBER = "537686677188"
BIRTH = date(1980, 2, 17)
SUPPORT_PIN, AUTH_PIN, SIGN_PIN = b"5678", b"1234", b"JPKITEST01"


def tlv(tag: int, value: bytes) -> bytes:
    return tag.to_bytes((tag.bit_length() + 7) // 8, "big") + encode_length(len(value)) + value


def key_tlvs(key: rsa.RSAPublicKey) -> bytes:
    n = key.public_numbers()
    return tlv(0x90, n.e.to_bytes(3, "big")) + tlv(0x91, n.n.to_bytes(256, "big"))


def sign(key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def raw_pkcs1(key: rsa.RSAPrivateKey, payload: bytes) -> bytes:
    """PKCS#1 v1.5 type 1 over ``payload`` as given (what DF28 is: nothing hashed here)."""
    block = b"\x00\x01" + b"\xff" * (256 - 3 - len(payload)) + b"\x00" + payload
    priv = key.private_numbers()
    return pow(int.from_bytes(block, "big"), priv.d, priv.public_numbers.n).to_bytes(256, "big")


def digest_info(d: bytes) -> bytes:
    inner = bytes.fromhex("300d06096086480165030402010500") + b"\x04" + bytes([len(d)]) + d
    return b"\x30" + bytes([len(inner)]) + inner


def cvc(cvca: rsa.RSAPrivateKey, certified: rsa.RSAPublicKey, issuer: bytes) -> bytes:
    body = issuer + b"1322121\x08\x05000" + bytes(4) + key_tlvs(certified)
    return tlv(0x7F21, tlv(0x5F4E, body) + tlv(0x5F37, sign(cvca, body)))


def with_offsets(tag: int, fields: list[bytes]) -> bytes:
    table_len = 2 + len(encode_length(2 * len(fields))) + 2 * len(fields)
    body_len = table_len + sum(map(len, fields))
    pos = 2 + len(encode_length(body_len)) + table_len
    offsets = b""
    for f in fields:
        offsets += pos.to_bytes(2, "big")
        pos += len(f)
    return tlv(tag, tlv(0xDF21, offsets) + b"".join(fields))


@dataclass
class Key:
    value: bytes | None  # None: blocked from issue
    tries: int
    max_tries: int


@dataclass
class App:
    files: dict[int, bytes]
    keys: dict[int, Key]
    #: fid -> key fids any one of which opens it (empty: free)
    access: dict[int, set[int]] = field(default_factory=dict)
    signer: rsa.RSAPrivateKey | None = None  # the AP's own key (80 2A P2 00)


class CardModel(Connection):
    """The card, reached directly (no reader). ``flaws`` names behaviours to get wrong."""

    def __init__(
        self,
        keys: dict[str, rsa.RSAPrivateKey],
        *,
        auth_cert: bytes,
        flaws: frozenset[str] = frozenset(),
    ) -> None:
        self.k = keys
        self.flaws = flaws
        self.apps = {JPKI: self._jpki(auth_cert), TEXT: self._text(), VISUAL: self._visual()}
        self.df: bytes | None = None
        self.ef: int | None = None
        self.verified: set[int] = set()

    @property
    def atr(self) -> bytes:
        return ATR

    @property
    def keyring(self) -> CvcaKeyring:
        return CvcaKeyring([CvcaKey(CVCA_ID, self.k["cvca"].public_key())])

    def reset(self) -> bytes:
        self.df, self.ef, self.verified = None, None, set()
        return ATR

    def close(self) -> None:
        pass

    # --- content ---------------------------------------------------------------------------

    def _jpki(self, auth_cert: bytes) -> App:
        label = b"JPKIAPICCTOKEN2".ljust(32) + b"JPKI".ljust(32) + b"MODEL".ljust(16)
        info = label + b"0" * 16 + bytes(44) + b"\x01\x00\x01\x00" + b" " * 16
        if "token_info_short" in self.flaws:
            info = info[:32]
        avail = b"\x8f\x8f\x00" if "avail_missing" not in self.flaws else None
        files = {
            0x0006: info,
            0x000A: auth_cert + b"\xff" * 64,
            0x000B: auth_cert,
            0x0002: auth_cert,
        }
        if avail is not None:
            files[0x0008] = avail
        keys = {0x0018: Key(AUTH_PIN, 3, 3), 0x001B: Key(SIGN_PIN, 5, 5)}
        files[0x0017] = b""
        files[0x001A] = b""
        return App(files, keys)

    def _text(self) -> App:
        ap, card = self.k["ap"], self.k["card"]
        ef1 = b"\xff\x10\x0c" + MY_NUMBER.encode() + b"\xff\xff"
        fields = [
            tlv(0xDF22, "黒桐\u3000幹也".encode()),
            tlv(0xDF23, "東京都清瀬市".encode()),
            tlv(0xDF24, b"19800217"),
            tlv(0xDF25, b"1"),
        ]
        ef2 = with_offsets(0xFF20, fields)
        hashed = tlv(0xDF31, hashlib.sha256(ef1).digest()) + tlv(
            0xDF32, hashlib.sha256(b"".join(fields)).digest()
        )
        ef3 = tlv(0xFF30, hashed + tlv(0xDF33, sign(ap, hashed)))
        cvca = self.k["cvca"] if "cvc_forged" not in self.flaws else card
        ef4 = cvc(cvca, ap.public_key(), CVCA_ID)
        ef5 = tlv(
            0xFF40,
            tlv(0xDF41, bytes.fromhex("01030E01"))
            + tlv(0xDF42, b"7000034\x08\x05001" + bytes(4))
            + tlv(0xDF43, b"\x11" * 32 + b"\xff" * 96),
        )
        df51 = tlv(0xDF51, key_tlvs(card.public_key()))
        ef7 = tlv(0xFF50, df51 + tlv(0xDF52, sign(ap, df51)))
        ef6 = tlv(0xA1, key_tlvs(self.k["session"].public_key()))
        files = {1: ef1, 2: ef2, 3: ef3, 4: ef4, 5: ef5, 6: ef6, 7: ef7}
        blocked = Key(None, 0, 1)  # blocked from issue
        keys = {
            0x11: Key(SUPPORT_PIN, 3, 3),
            0x12: blocked,
            0x14: Key(MY_NUMBER.encode(), 10, 10),
            0x15: Key(b"55021720352285", 10, 10),
        }
        any_key = {0x11, 0x14, 0x15}
        access = {1: {0x11, 0x14}, 2: {0x11, 0x15}, 3: any_key, 6: any_key, 7: any_key}
        if "access_a_opens_0002" in self.flaws:
            access[2] = {0x11, 0x14, 0x15}
        if "cvc_protected" in self.flaws:
            access[4] = {0x11}
        return App(files, keys, access, signer=self._signer())

    def _signer(self) -> rsa.RSAPrivateKey:
        # A copy of the files on another chip: its own key is not the one in the records.
        return self.k["session"] if "foreign_chip" in self.flaws else self.k["card"]

    def _visual(self) -> App:
        ap, card = self.k["ap"], self.k["card"]
        signed = tlv(0xDF11, b"19800217") + tlv(0xDF12, key_tlvs(card.public_key()))
        ef1 = tlv(0xFF10, signed + tlv(0xDF13, sign(ap, signed)))
        png = b"\x89PNG\r\n\x1a\n" + bytes(16)
        fields = [
            tlv(0xDF22, b"19800217"),
            tlv(0xDF23, b"1"),
            tlv(0xDF24, key_tlvs(card.public_key())),
            tlv(0xDF25, png + b"n"),
            tlv(0xDF26, png + b"a"),
            tlv(0xDF27, b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x42" * 64),
        ]
        groups = (fields[0:3], fields[3:5], fields[5:6])
        digests = b"".join(hashlib.sha256(b"".join(g)).digest() for g in groups)
        fields += [
            tlv(0xDF28, raw_pkcs1(ap, digest_info(digests))),
            tlv(0xDF29, b"20350217"),
            tlv(0xDF2A, png + b"c"),
        ]
        ef2 = with_offsets(0xFF20, fields) + b"\xff" * 40
        ef3 = tlv(
            0xFF30,
            tlv(0xDF31, bytes.fromhex("06030E01"))
            + tlv(0xDF32, b"7000024\x08\x05001" + bytes(4))
            + tlv(0xDF33, b"\x00")
            + tlv(0xDF34, b"13221")
            + tlv(0xDF35, b"7900025\x08\x05001" + bytes(4) + b"\x77" * 256),
        )
        issuer = (
            CVCA_ID if "cvc_unknown_cvca" not in self.flaws else b"7999999\x08\x05001" + bytes(4)
        )
        ef4 = cvc(self.k["cvca"], ap.public_key(), issuer)
        df41 = tlv(0xDF41, png + b"m")
        df42 = tlv(0xDF42, key_tlvs(card.public_key()))
        ef5 = tlv(0xFF40, df41 + df42 + tlv(0xDF43, sign(ap, df41 + df42)))
        files = {1: ef1, 2: ef2, 3: ef3, 4: ef4, 5: ef5, 6: b"\x00" * 8}
        keys = {
            0x11: Key(b"550217", 10, 10),
            0x12: Key(b"55021720352285", 10, 10),
            0x13: Key(MY_NUMBER.encode(), 10, 10),
        }
        ab = {0x12, 0x13}
        access = {1: {0x11}, 2: ab, 5: {0x13}, 6: ab}
        return App(files, keys, access, signer=self._signer())

    # --- APDUs -----------------------------------------------------------------------------

    def _transmit(self, c: bytes) -> bytes:
        cla, ins, p1, p2 = c[:4]
        lc = c[4] if len(c) > 5 else 0
        data = c[5 : 5 + lc] if len(c) > 5 else b""
        le = c[-1] if len(c) in (5, 6 + lc) else None
        if cla not in (0x00, 0x80):
            return b"\x6e\x00"
        if ins == 0xA4:
            return self._select(p1, p2, data)
        if ins == 0xB0:
            return self._read(p1, p2, 256 if le in (None, 0) else le)
        if ins == 0x20:
            return self._verify(data if len(c) > 5 else None)
        if ins == 0x2A:
            return self._sign(p1, p2, data)
        return b"\x6d\x00"

    def _select(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 == 0x00 and not data:  # SELECT MF
            if "select_mf_resets" in self.flaws:
                self.df, self.ef, self.verified = None, None, set()
                return b"\x90\x00"
            return b"\x6a\x86" if self.df is None else b"\x90\x00"
        if p1 == 0x04:
            self.verified, self.ef = set(), None
            self.df = data if data in self.apps else None
            return b"\x90\x00" if self.df else b"\x6a\x82"
        if p1 == 0x02 and self.df is not None:
            fid = int.from_bytes(data, "big")
            app = self.apps[self.df]
            if fid in app.files or fid in app.keys:
                self.ef = fid
                return b"\x90\x00"
        return b"\x6a\x82"

    def _read(self, p1: int, p2: int, le: int) -> bytes:
        if self.df is None or self.ef is None:
            return b"\x69\x86"
        app = self.apps[self.df]
        if self.ef in app.keys or (self.ef in (0x17, 0x1A) and self.df == JPKI):
            return b"\x69\x81"
        need = app.access.get(self.ef, set())
        if need and not need & self.verified:
            return b"\x69\x82"
        content = app.files[self.ef]
        off = (p1 << 8) | p2
        if off > len(content) or (off == len(content) and off):
            return b"\x6b\x00"
        return content[off : off + le] + b"\x90\x00"

    def _verify(self, data: bytes | None) -> bytes:
        app = self.apps[self.df] if self.df else None
        if app is None or self.ef not in app.keys:
            return b"\x69\x86"
        key = app.keys[self.ef]
        if data is None:
            if key.tries == 0:
                return b"\x69\x84" if "blocked_6984" in self.flaws else b"\x63\xc0"
            return bytes([0x63, 0xC0 | key.tries])
        if key.tries == 0 or key.value is None:
            return b"\x69\x84"
        if data == key.value:
            key.tries = key.max_tries
            self.verified.add(self.ef)
            return b"\x90\x00"
        key.tries -= 1
        return bytes([0x63, 0xC0 | key.tries])

    def _sign(self, p1: int, p2: int, data: bytes) -> bytes:
        app = self.apps[self.df] if self.df else None
        if app is None:
            return b"\x69\x86"
        if self.df != JPKI:
            if p2 != 0x00 or app.signer is None or p1 != 0:
                return b"\x6a\x86"
            return raw_pkcs1(app.signer, data) + b"\x90\x00"
        pin = {0x17: 0x18, 0x1A: 0x1B}.get(self.ef or 0)
        if pin is None:
            return b"\x69\x85"
        if pin not in self.verified:
            return b"\x69\x82"
        key = self.k["auth"] if pin == 0x18 else self.k["sign"]
        if p1 > 5 or ("p1_05_missing" in self.flaws and p1 == 5):
            return b"\x6a\x86"
        if p1 in (2, 4) and len(data) != 32:
            return b"\x67\x00"
        if p1 == 0:
            return raw_pkcs1(key, data) + b"\x90\x00"
        digest = data if p1 in (2, 4) else hashlib.sha256(data).digest()
        if p1 == 1:
            return raw_pkcs1(key, digest) + b"\x90\x00"
        if p1 in (2, 3):
            return raw_pkcs1(key, digest_info(digest)) + b"\x90\x00"
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        from cryptography.hazmat.primitives.asymmetric import utils

        return key.sign(digest, pss, utils.Prehashed(hashes.SHA256())) + b"\x90\x00"
