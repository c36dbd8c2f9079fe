"""Fuzz the card-info file parsers of the text AP and visual AP.

The first input byte picks the parser; the rest is the file. Selector 5 splits the rest into
the four text AP files (2-byte big-endian length before each) for the integrity check.
"""

from __future__ import annotations

from _harness import fuzz_main, guarded

from jpki.card.cvc import CardVerifiableCertificate, parse_rsa_key
from jpki.card.text_ap import (
    CardBasicInfo,
    basic_info_digest_source,
    check_signed_card_key,
    check_text_integrity,
    parse_my_number_file,
)
from jpki.card.visual_ap import AgeRecord, MyNumberImage, Surface, VisualApBasicData

NAME = "cardinfo"


def split(data: bytes, n: int) -> list[bytes]:
    """``n`` length-prefixed parts (short or missing parts come out empty)."""
    parts: list[bytes] = []
    pos = 0
    for _ in range(n):
        size = int.from_bytes(data[pos : pos + 2], "big")
        parts.append(data[pos + 2 : pos + 2 + size])
        pos += 2 + size
    return parts


def join(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts)


@guarded
def target(data: bytes) -> None:
    if not data:
        return
    which, raw = data[0] % 10, data[1:]
    if which == 0:
        repr(parse_my_number_file(raw))
    elif which == 1:
        CardBasicInfo.parse(raw)
        basic_info_digest_source(raw)
    elif which == 2:
        CardVerifiableCertificate.parse(raw)
    elif which == 3:
        Surface.parse(raw)
    elif which == 4:
        MyNumberImage.parse(raw)
    elif which == 5:
        ef1, ef2, ef3, ef4 = split(raw, 4)
        result = check_text_integrity(ef1, ef2, ef3, ef4)
        assert result.reasons
    elif which == 6:
        parse_rsa_key(raw)
    elif which == 7:
        AgeRecord.parse(raw)
    elif which == 8:
        VisualApBasicData.parse(raw)
    else:
        ef7, ef4 = split(raw, 2)
        assert check_signed_card_key(ef7, ef4)[0].reasons


if __name__ == "__main__":
    fuzz_main(NAME, target)
