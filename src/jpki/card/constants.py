"""Spec constants of the My Number card chip (the card-protocol spec, §1–6; docs/card-client.md)."""

from __future__ import annotations

import enum


class Aid(bytes, enum.Enum):
    """Application identifiers (SELECT DF by name)."""

    JPKI = bytes.fromhex("D392F000260100000001")  # 公的個人認証AP
    TEXT = bytes.fromhex("D3921000310001010408")  # 券面入力補助AP
    VISUAL = bytes.fromhex("D3921000310001010402")  # 券面事項確認AP
    JUKI = bytes.fromhex("D3921000310001010401")  # 住基AP (low confidence)
    COMMON = bytes.fromhex("D3921000310001010100")  # 共通AP


class JpkiFile(enum.IntEnum):
    """EFs of the JPKI AP."""

    SIGNING_CERT = 0x0001
    SIGNING_CA_CERT = 0x0002
    TOKEN_INFO = 0x0006
    CERT_AVAILABILITY = 0x0008
    AUTH_CERT = 0x000A
    AUTH_CA_CERT = 0x000B
    AUTH_KEY = 0x0017
    AUTH_PIN = 0x0018
    SIGNING_KEY = 0x001A
    SIGNING_PIN = 0x001B


# The architecture names the JPKI file enum ``FileId``; the other APs reuse FIDs, so each AP
# gets its own enum and ``FileId`` stays the JPKI one.
FileId = JpkiFile


class TextFile(enum.IntEnum):
    """EFs of the card-info input support AP (券面入力補助AP)."""

    MY_NUMBER = 0x0001
    BASIC_INFO = 0x0002
    SIGNATURE = 0x0003
    ISSUER_CERT = 0x0004
    AP_BASIC_DATA = 0x0005
    SESSION_KEY = 0x0006
    SIGNED_KEY = 0x0007
    UNKNOWN_0008 = 0x0008  # seen on a real card as sixteen FF bytes; purpose unknown
    PIN = 0x0011
    BLOCKED = 0x0012  # blocked from issue: empty VERIFY answers 63C0
    COLLATION_A = 0x0014
    COLLATION_B = 0x0015


class VisualFile(enum.IntEnum):
    """EFs of the card-surface confirmation AP (券面事項確認AP)."""

    AGE_RECORD = 0x0001
    SURFACE = 0x0002
    AP_BASIC_DATA = 0x0003
    ISSUER_CERT = 0x0004
    MY_NUMBER_IMAGE = 0x0005
    UNKNOWN_0006 = 0x0006
    BIRTH_DATE_KEY = 0x0011
    COLLATION_B = 0x0012
    COLLATION_A = 0x0013


class TokenKind(enum.StrEnum):
    """What kind of JPKI token the label in EF 0006 names."""

    MY_NUMBER_CARD = "my_number_card"
    JUKI_CARD = "juki_card"
    ANDROID = "android"
    IPHONE = "iphone"
    UNKNOWN = "unknown"


TOKEN_LABELS: dict[str, TokenKind] = {
    "JPKIAPICCTOKEN2": TokenKind.MY_NUMBER_CARD,
    "JPKIAPICCTOKEN": TokenKind.JUKI_CARD,
    "JPKIAPGPSETOKEN": TokenKind.ANDROID,
    "JPKIAPIOSTOKEN": TokenKind.IPHONE,
}

# Contact ATR of the card; contactless readers synthesise their own, so never rely on it.
CONTACT_ATR = bytes.fromhex("3BE000FF8131FE4514")
