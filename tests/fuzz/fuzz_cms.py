"""Fuzz CMS SignedData parsing and signer verification (no trust anchors: no chain work)."""

from __future__ import annotations

from datetime import UTC, datetime

from _harness import fuzz_main, guarded

from jpki.policy import Policy
from jpki.verify.cms import parse_signed_data, verify_cms

NAME = "cms"
_POLICY = Policy(at=datetime(2026, 1, 1, tzinfo=UTC))


@guarded
def target(data: bytes) -> None:
    sd = parse_signed_data(data)
    for s in sd.signers:
        if s.certificate is not None:
            s.certificate.as_dict()
    result = verify_cms(data, _POLICY, content=b"jpki fuzz seed\n")
    assert result.reasons


if __name__ == "__main__":
    fuzz_main(NAME, target)
