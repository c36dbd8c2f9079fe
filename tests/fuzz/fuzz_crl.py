"""Fuzz CRL loading: the DER layout walk, the vectorised serial index, header fields."""

from __future__ import annotations

from _harness import fuzz_main, guarded, touch

from jpki.revocation.crl import Crl

NAME = "crl"


@guarded
def target(data: bytes) -> None:
    crl = Crl.load(data)
    touch(crl, "issuer", "this_update", "next_update", "number", "base_number", "is_delta")
    touch(crl, "idp", "idp_names", "authority_key_id", "signature_algorithm")
    crl.tbs_digest()
    entries = list(crl.index.entries())
    assert len(entries) == len(crl)
    for entry in entries[:8]:
        # Every indexed entry must be found again by its serial.
        assert crl.lookup(entry.serial) is not None
    crl.lookup(0)
    crl.lookup(2**159)


if __name__ == "__main__":
    fuzz_main(NAME, target)
