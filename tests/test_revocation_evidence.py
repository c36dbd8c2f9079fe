"""RevocationStore.check_with_evidence: the CRLs an answer rests on, per issuer key."""

from __future__ import annotations

from pathlib import Path

import pytest

from jpki.revocation.crl import Crl
from jpki.revocation.policy import RevocationStatus
from jpki.revocation.store import RevocationStore, crl_identity, issuer_key_id
from jpki.testing.pki import TestPki, sample_person
from revocation_helpers import NOW, R
from test_revocation_semantics import make_crl


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RevocationStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ev.db'}"
    else:
        url = str(request.getfixturevalue("pg_server").create_db("ev"))
    s = RevocationStore(url)
    request.addfinalizer(s.close)
    return s


def test_evidence_names_the_certificates_own_generation(
    pki: TestPki, pki_2015: TestPki, store: RevocationStore
) -> None:
    new = pki.issue_signing(sample_person(0), label="ev-new")
    cas = [pki.sign_ca.cert, pki_2015.sign_ca.cert]
    store.load(make_crl(pki_2015, [(new.cert.serial_number, R.superseded, NOW, None)], 40), cas)
    crl3 = make_crl(pki, [], 3)
    store.load(crl3, cas)
    res, used = store.check_with_evidence(new.cert, pki.sign_ca.cert, at=NOW)
    assert res.status is RevocationStatus.GOOD
    key = issuer_key_id(pki.sign_ca.cert)
    assert [(u.issuer_key, u.number, u.is_delta) for u in used] == [(key, 3, False)]
    assert used[0].crl_id == crl_identity(Crl.load(crl3))
    assert store.check(new.cert, pki.sign_ca.cert, at=NOW) == res


def test_evidence_names_the_replaced_crl_the_history_answers_from(
    pki: TestPki, store: RevocationStore
) -> None:
    leaf = pki.issue_signing(sample_person(1), label="ev-history")
    s = leaf.cert.serial_number
    store.load(make_crl(pki, [(s, R.key_compromise, NOW, None)], 7), [pki.sign_ca.cert])
    store.load(make_crl(pki, [], 8), [pki.sign_ca.cert])  # drops the final revocation
    res, used = store.check_with_evidence(leaf.cert, pki.sign_ca.cert, at=NOW)
    assert res.status is RevocationStatus.REVOKED and "history" in res.source
    assert [(u.number, u.crl_id is None) for u in used] == [(8, False), (7, True)]
    assert [u.to_json()["history"] for u in used] == [False, True]
