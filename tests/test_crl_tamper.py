"""A CRL's bytes are the bytes that were verified: changing the file afterwards (one byte in
place, truncation, replacement by rename) never turns REVOKED into GOOD while a loaded CRL
(and its index) is in use, and never crashes the process (SIGBUS on a truncated mapping).

The CRL here is above ``MAP_THRESHOLD`` so the memory-mapped path is the one exercised.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from jpki.errors import CrlError
from jpki.revocation.crl import MAP_THRESHOLD, Crl
from jpki.revocation.policy import RevocationStatus, check_revocation
from jpki.revocation.store import RevocationStore
from jpki.testing.crl import synthetic_crl
from jpki.testing.pki import Issued, TestPki, sample_person
from revocation_helpers import NOW

N = 600_000  # ~18.6 MB of DER: above the 16 MiB mapping threshold


@pytest.fixture(scope="module")
def big(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, int, Issued]:
    syn = synthetic_crl(
        N,
        pki.sign_ca.key,
        pki.sign_ca.cert.subject,
        this_update=NOW,
        next_update=NOW + timedelta(days=1),
        number=5,
    )
    assert len(syn.der) > MAP_THRESHOLD
    final = np.flatnonzero(np.isin(syn.reasons, [0, 1, 3, 4, 5]))
    serial = int(syn.serials[final[len(final) // 2]])
    leaf = pki.issue_signing(sample_person(0), label="tamper", serial=serial)
    return syn.der, serial, leaf


def _in_place(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def _truncate(path: Path, offset: int) -> None:
    os.truncate(path, offset)


def _replace_by_rename(pki: TestPki) -> Callable[[Path, int], None]:
    def go(path: Path, offset: int) -> None:
        other = pki.make_crl("sign", [], this_update=NOW, number=6)  # signed, lists nothing
        tmp = path.with_suffix(".new")
        tmp.write_bytes(other)
        os.replace(tmp, path)

    return go


@pytest.mark.parametrize("change", ["one-byte", "truncate", "rename"])
def test_changed_file_never_changes_a_loaded_crl(
    big: tuple[bytes, int, Issued], pki: TestPki, tmp_path: Path, change: str
) -> None:
    der, serial, leaf = big
    path = tmp_path / "big.crl"
    path.write_bytes(der)
    crl = Crl.from_file(path)
    crl.verify([pki.sign_ca.cert])
    entry_at = crl.index.find(serial)
    assert entry_at is not None
    assert not crl.source_changed()
    before = check_revocation(leaf.cert, pki.sign_ca.cert, crls=[crl], at=NOW)
    assert before.status is RevocationStatus.REVOKED

    act = {
        "one-byte": _in_place,
        "truncate": _truncate,
        "rename": _replace_by_rename(pki),
    }[change]
    act(path, entry_at + 4)  # inside the entry: the serial's octets

    assert crl.source_changed()
    # the loaded CRL answers from the bytes it verified: same entry, same answer
    hit = crl.lookup(serial)
    assert hit is not None and hit.serial == serial
    after = check_revocation(leaf.cert, pki.sign_ca.cert, crls=[crl], at=NOW)
    assert after.status is RevocationStatus.REVOKED and after.reason == before.reason
    if change == "truncate":  # the verified bytes also go to the store unchanged
        with RevocationStore(tmp_path / "rev.db") as st:
            st.load(crl, [pki.sign_ca.cert])
            res = st.check(leaf.cert, pki.sign_ca.cert, at=NOW)
            assert res.status is RevocationStatus.REVOKED
    # the file as it is now is re-verified when loaded again: refused, or (rename) the other
    # CA-signed CRL, which cannot undo the final revocation the first one listed
    if change == "rename":
        fresh = Crl.from_file(path)
        fresh.verify([pki.sign_ca.cert])
        res = check_revocation(leaf.cert, pki.sign_ca.cert, crls=[crl, fresh], at=NOW)
        assert res.status is RevocationStatus.REVOKED
    else:
        with pytest.raises(CrlError):
            Crl.from_file(path).verify([pki.sign_ca.cert])


def test_small_files_are_read_and_compared_too(
    pki: TestPki, leaf_small: Issued, tmp_path: Path
) -> None:
    der = pki.make_crl("sign", [(leaf_small.cert.serial_number, None, NOW)], this_update=NOW)
    path = tmp_path / "small.crl"
    path.write_bytes(der)
    crl = Crl.from_file(path)
    _in_place(path, len(der) - 40)
    assert crl.source_changed()
    assert check_revocation(leaf_small.cert, pki.sign_ca.cert, crls=[crl], at=NOW).status is (
        RevocationStatus.REVOKED
    )


@pytest.fixture(scope="module")
def leaf_small(pki: TestPki) -> Issued:
    return pki.issue_signing(sample_person(1), label="tamper-small")
