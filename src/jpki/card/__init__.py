"""Card client: ISO 7816 protocol plus one session class per card application."""

from jpki.card.constants import Aid, FileId, JpkiFile, TextFile, TokenKind, VisualFile
from jpki.card.jpki_ap import CertSlot, JpkiAp, KeyKind, PinKind, TokenInfo
from jpki.card.pin import PinStatus
from jpki.card.protocol import CardProtocol
from jpki.card.text_ap import (
    CardBasicInfo,
    CardInfo,
    CardSex,
    IntegrityResult,
    IntegrityStatus,
    TextAp,
)
from jpki.card.visual_ap import MyNumberImage, Surface, VisualAp, collation_b

__all__ = [
    "Aid",
    "CardBasicInfo",
    "CardInfo",
    "CardProtocol",
    "CardSex",
    "CertSlot",
    "FileId",
    "IntegrityResult",
    "IntegrityStatus",
    "JpkiAp",
    "JpkiFile",
    "KeyKind",
    "MyNumberImage",
    "PinKind",
    "PinStatus",
    "Surface",
    "TextAp",
    "TextFile",
    "TokenInfo",
    "TokenKind",
    "VisualAp",
    "VisualFile",
    "collation_b",
]
