"""Fuzz command/response APDU decoding and log redaction."""

from __future__ import annotations

import re

from _harness import fuzz_main, guarded

from jpki.apdu import SECRET_INS, CommandApdu, ResponseApdu, redact_command

NAME = "apdu"
# What a redacted VERIFY/CHANGE line may contain: the header, a byte count, Le. No data.
_REDACTED = re.compile(
    r"[0-9A-F]{2} ?[0-9A-F]{2} ?[0-9A-F]{2} ?[0-9A-F]{2}"
    r"( \[secret\])?( Le=\d+)?"
)


@guarded
def target(data: bytes) -> None:
    text = redact_command(data)
    if len(data) > 5 and data[1] in SECRET_INS:
        # The secret part of a VERIFY / CHANGE must never reach the log line.
        assert _REDACTED.fullmatch(text), text
    r = ResponseApdu.decode(data)
    assert r.encode() == data
    c = CommandApdu.decode(data)
    forms = [c.encode(extended=True)]
    if not c.needs_extended:
        forms.append(c.encode(extended=False))
    assert data in forms


if __name__ == "__main__":
    fuzz_main(NAME, target)
