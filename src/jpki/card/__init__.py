"""Card client: ISO 7816 protocol plus one session class per card application."""

from jpki.card.constants import Aid, FileId, JpkiFile, TextFile, TokenKind, VisualFile
from jpki.card.cvc import CardVerifiableCertificate
from jpki.card.jpki_ap import (
    CertAvailability,
    CertSlot,
    JpkiAp,
    KeyKind,
    PinKind,
    SignScheme,
    TokenInfo,
)
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
from jpki.card.visual_ap import AgeRecord, MyNumberImage, Surface, VisualAp, collation_b

__all__ = [
    "AgeRecord",
    "Aid",
    "CardBasicInfo",
    "CardInfo",
    "CardProtocol",
    "CardSex",
    "CardVerifiableCertificate",
    "CertAvailability",
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
    "SignScheme",
    "Surface",
    "TextAp",
    "TextFile",
    "TokenInfo",
    "TokenKind",
    "VisualAp",
    "VisualFile",
    "collation_b",
]
