"""Fuzz BER-TLV decoding and DER length sizing."""

from __future__ import annotations

from _harness import fuzz_main, guarded

from jpki.errors import TlvError
from jpki.tlv import decode_all, der_total_length, encode_tlv, find

NAME = "tlv"


@guarded
def target(data: bytes) -> None:
    # Sizing a DER object from a growing prefix: None until known, then one fixed answer.
    answer: int | None = None
    for i in range(min(len(data), 12) + 1):
        try:
            got = der_total_length(data[:i])
        except TlvError:
            break
        assert answer is None or got == answer
        answer = got if got is not None else answer
    find(data, 0xDF22)
    items = decode_all(data, skip_padding=True)
    for tlv in items:
        assert decode_all(encode_tlv(tlv.tag, tlv.value)) == [tlv]
        if tlv.constructed:
            decode_all(tlv.value)


if __name__ == "__main__":
    fuzz_main(NAME, target)
