"""Revocation semantics shared by CRL files, the SQLite store and the PostgreSQL store.

Final reasons are never undone, invalidityDate never moves a revocation later, CA generations
(same DN, other keys) each have their own CRLs and number sequence, loads are atomic, and a
store object can be shared between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from jpki.errors import CrlError
from jpki.revocation.crl import Crl
from jpki.revocation.index import RevocationReason
from jpki.revocation.policy import RevocationStatus, check_revocation
from jpki.revocation.store import RevocationStore
from jpki.testing.pki import Issued, TestPki, sample_person
from revocation_helpers import NOW, R

Entry = tuple[int, x509.ReasonFlags | None, datetime, datetime | None]


def make_crl(
    pki: TestPki,
    entries: Sequence[Entry],
    number: int,
    *,
    delta_of: int | None = None,
    this_update: datetime = NOW,
) -> bytes:
    """A signing-CA CRL; entries are (serial, reason, revocationDate, invalidityDate)."""
    ca = pki.sign_ca
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(this_update)
        .next_update(this_update + timedelta(days=1))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    if delta_of is not None:
        b = b.add_extension(x509.DeltaCRLIndicator(delta_of), critical=True)
    for serial, reason, when, invalid in entries:
        rb = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason is not None:
            rb = rb.add_extension(x509.CRLReason(reason), critical=False)
        if invalid is not None:
            rb = rb.add_extension(x509.InvalidityDate(invalid), critical=False)
        b = b.add_revoked_certificate(rb.build())
    return b.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def leaf(pki: TestPki) -> Issued:
    return pki.issue_signing(sample_person(0), label="semantics")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rev.db'}"
    server = request.getfixturevalue("pg_server")
    return str(server.create_db("rev"))


@pytest.fixture
def store(store_url: str) -> Iterator[RevocationStore]:
    with RevocationStore(store_url) as st:
        yield st


# --- final reasons are never undone -------------------------------------------------------------


FINAL_CASES = {
    # base says keyCompromise, delta says removeFromCRL
    "delta-removeFromCRL": (
        [(R.key_compromise, 1, None)],
        [(R.remove_from_crl, 2, 1)],
    ),
    # affiliationChanged then removeFromCRL in the delta
    "delta-remove-affiliation": (
        [(R.affiliation_changed, 1, None)],
        [(R.remove_from_crl, 2, 1)],
    ),
    # a later full CRL no longer lists it
    "later-full-drops-it": ([(R.key_compromise, 1, None)], [(None, 2, None)]),
    # a later full CRL turns it into a hold
    "later-full-hold": ([(R.cessation_of_operation, 1, None)], [(R.certificate_hold, 2, None)]),
}


def _steps(pki: TestPki, serial: int, case: str) -> list[bytes]:
    first, second = FINAL_CASES[case]
    out = []
    for reason, number, delta_of in [*first, *second]:
        entries: list[Entry] = []
        if reason is not None or delta_of is not None:
            entries.append((serial, reason, NOW - DAY, None))
        out.append(make_crl(pki, entries, number, delta_of=delta_of))
    return out


@pytest.mark.parametrize("case", sorted(FINAL_CASES))
def test_final_reason_never_undone_in_files(pki: TestPki, leaf: Issued, case: str) -> None:
    crls = _steps(pki, leaf.cert.serial_number, case)
    res = check_revocation(leaf.cert, pki.sign_ca.cert, crls=crls, at=NOW)
    assert res.status is RevocationStatus.REVOKED, res
    assert res.reason not in (RevocationReason.CERTIFICATE_HOLD, RevocationReason.REMOVE_FROM_CRL)


@pytest.mark.parametrize("case", sorted(FINAL_CASES))
def test_final_reason_never_undone_in_store(
    pki: TestPki, leaf: Issued, store: RevocationStore, case: str
) -> None:
    for der in _steps(pki, leaf.cert.serial_number, case):
        store.load(der, [pki.sign_ca.cert])
    res = store.check(leaf.cert, pki.sign_ca.cert, at=NOW)
    assert res.status is RevocationStatus.REVOKED, res
    assert res.reason not in (RevocationReason.CERTIFICATE_HOLD, RevocationReason.REMOVE_FROM_CRL)
    # and through the policy, as a verifier asks
    assert check_revocation(leaf.cert, pki.sign_ca.cert, store=store, at=NOW).status is (
        RevocationStatus.REVOKED
    )


def test_serial_listed_twice_final_wins(pki: TestPki, leaf: Issued, store: RevocationStore) -> None:
    s = leaf.cert.serial_number
    for order in ([R.key_compromise, R.remove_from_crl], [R.certificate_hold, R.superseded]):
        der = make_crl(pki, [(s, r, NOW - DAY, None) for r in order], 1)
        res = check_revocation(leaf.cert, pki.sign_ca.cert, crls=[der], at=NOW)
        assert res.status is RevocationStatus.REVOKED
        assert res.reason in (RevocationReason.KEY_COMPROMISE, RevocationReason.SUPERSEDED)
    store.load(make_crl(pki, [(s, R.certificate_hold, NOW - DAY, None)], 1), [pki.sign_ca.cert])
    store.load(
        make_crl(pki, [(s, R.remove_from_crl, NOW, None), (s, R.key_compromise, NOW, None)], 2),
        [pki.sign_ca.cert],
    )
    res = store.check(leaf.cert, pki.sign_ca.cert, at=NOW)
    assert res.status is RevocationStatus.REVOKED
    assert res.reason is RevocationReason.KEY_COMPROMISE


def test_hold_may_be_released(pki: TestPki, leaf: Issued, store: RevocationStore) -> None:
    """Only certificateHold can be undone: by a delta's removeFromCRL or a later full CRL."""
    s = leaf.cert.serial_number
    held = make_crl(pki, [(s, R.certificate_hold, NOW - DAY, None)], 1)
    release = make_crl(pki, [(s, R.remove_from_crl, NOW, None)], 2, delta_of=1)
    later = make_crl(pki, [], 3)
    assert (
        check_revocation(leaf.cert, pki.sign_ca.cert, crls=[held], at=NOW).reason
        is RevocationReason.CERTIFICATE_HOLD
    )
    for crls in ([held, release], [held, later]):
        res = check_revocation(leaf.cert, pki.sign_ca.cert, crls=crls, at=NOW)
        assert res.status is RevocationStatus.GOOD, res
    store.load(held, [pki.sign_ca.cert])
    assert store.check(leaf.cert, pki.sign_ca.cert, at=NOW).status is RevocationStatus.REVOKED
    store.load(release, [pki.sign_ca.cert])
    assert store.check(leaf.cert, pki.sign_ca.cert, at=NOW).status is RevocationStatus.GOOD
    r = store.load(later, [pki.sign_ca.cert])
    assert r.kept_final == 0
    assert store.check(leaf.cert, pki.sign_ca.cert, at=NOW).status is RevocationStatus.GOOD


def test_history_survives_reopening(pki: TestPki, leaf: Issued, store_url: str) -> None:
    s = leaf.cert.serial_number
    with RevocationStore(store_url) as st:
        st.load(make_crl(pki, [(s, R.key_compromise, NOW - DAY, None)], 1), [pki.sign_ca.cert])
        assert st.load(make_crl(pki, [], 2), [pki.sign_ca.cert]).kept_final == 1
    with RevocationStore(store_url) as st:
        res = st.check(leaf.cert, pki.sign_ca.cert, at=NOW)
        assert res.status is RevocationStatus.REVOKED and "history" in res.source


# --- time semantics (RFC 5280) ------------------------------------------------------------------


def test_invalidity_date_never_moves_revocation_later(
    pki: TestPki, leaf: Issued, store: RevocationStore
) -> None:
    s = leaf.cert.serial_number
    revoked, invalid = NOW - 3 * DAY, NOW + 30 * DAY  # nonsense but signed: must not help
    der = make_crl(pki, [(s, R.affiliation_changed, revoked, invalid)], 1)
    store.load(der, [pki.sign_ca.cert])
    at = NOW - DAY  # after revocationDate, before invalidityDate
    for res in (
        check_revocation(leaf.cert, pki.sign_ca.cert, crls=[der], at=NOW),
        store.check(leaf.cert, pki.sign_ca.cert, at=NOW),
    ):
        assert res.status is RevocationStatus.REVOKED
        assert res.revoked_at == revoked and res.invalidity_date == invalid
        assert res.to_json()["invalidity_date"] == invalid.isoformat()
    # A CRL valid at ``at`` is needed for the earlier time: the same entry, older CRL.
    early = make_crl(pki, [(s, R.affiliation_changed, revoked, invalid)], 1, this_update=at)
    res = check_revocation(leaf.cert, pki.sign_ca.cert, crls=[early], at=at)
    assert res.status is RevocationStatus.REVOKED
    # invalidityDate before revocationDate is only reported (revocation as of revocationDate)
    before = make_crl(pki, [(s, R.affiliation_changed, NOW + DAY, NOW - 2 * DAY)], 1)
    res = check_revocation(leaf.cert, pki.sign_ca.cert, crls=[before], at=NOW)
    assert res.status is RevocationStatus.GOOD and "later" in res.detail
    assert res.invalidity_date == NOW - 2 * DAY


# --- CA generations: keyed by issuer key ----------------------------------------------------------


def test_generations_have_their_own_crls(
    pki: TestPki, pki_2015: TestPki, store: RevocationStore
) -> None:
    assert pki.sign_ca.cert.subject == pki_2015.sign_ca.cert.subject
    new = pki.issue_signing(sample_person(0), label="gen-new")
    old = pki_2015.issue_signing(sample_person(1), label="gen-old")
    cas = [pki.sign_ca.cert, pki_2015.sign_ca.cert]
    # the 2015 generation is at CRL #40, the 2023 one at #3: neither is "going backwards"
    store.load(make_crl(pki_2015, [(old.cert.serial_number, R.superseded, NOW, None)], 40), cas)
    store.load(make_crl(pki, [], 3), cas)
    store.load(make_crl(pki, [], 4), cas)
    assert sorted(c.number for c in store.current()) == [4, 40]
    with pytest.raises(CrlError, match="backwards"):
        store.load(make_crl(pki_2015, [], 39), cas)
    assert store.check(old.cert, pki_2015.sign_ca.cert, at=NOW).status is (RevocationStatus.REVOKED)
    # the 2023 CRL does not list the 2015 certificate: it must not answer for it
    assert store.check(old.cert, pki.sign_ca.cert, at=NOW).status is RevocationStatus.UNKNOWN
    res = store.check(new.cert, pki.sign_ca.cert, at=NOW)
    assert res.status is RevocationStatus.GOOD and res.source == "store:crl#4"
    # the 2015 CRL listing the 2023 certificate's serial says nothing about it
    store.load(make_crl(pki_2015, [(new.cert.serial_number, R.superseded, NOW, None)], 41), cas)
    assert store.check(new.cert, pki.sign_ca.cert, at=NOW).status is RevocationStatus.GOOD


# --- atomic loads, threads -----------------------------------------------------------------------


def test_reader_sees_old_or_new_never_a_mix(pki: TestPki, leaf: Issued, store_url: str) -> None:
    s = leaf.cert.serial_number
    with RevocationStore(store_url) as writer, RevocationStore(store_url) as reader:
        writer.load(make_crl(pki, [], 1), [pki.sign_ca.cert])
        assert reader.check(leaf.cert, pki.sign_ca.cert, at=NOW).source == "store:crl#1"
        seen: list[tuple[str, RevocationStatus, str]] = []

        def during(stage: str) -> None:
            r = reader.check(leaf.cert, pki.sign_ca.cert, at=NOW)
            seen.append((stage, r.status, r.source))

        writer.load(
            make_crl(pki, [(s, R.key_compromise, NOW - DAY, None)], 2),
            [pki.sign_ca.cert],
            _hook=during,
        )
        assert [x[0] for x in seen] == ["chunks", "current", "commit"]
        assert all(x[1:] == (RevocationStatus.GOOD, "store:crl#1") for x in seen), seen
        after = reader.check(leaf.cert, pki.sign_ca.cert, at=NOW)
        assert after.status is RevocationStatus.REVOKED and after.source == "store:crl#2"


def test_store_shared_between_threads(pki: TestPki, store: RevocationStore) -> None:
    leaves = [pki.issue_signing(sample_person(i % 2), label=f"thr-{i}") for i in range(4)]
    revoked = leaves[0].cert.serial_number
    store.load(make_crl(pki, [], 1), [pki.sign_ca.cert])
    errors: list[BaseException] = []
    answers: list[tuple[int, RevocationStatus, str]] = []
    stop = threading.Event()

    def reader(i: int) -> None:
        try:
            while not stop.is_set():
                r = store.check(leaves[i].cert, pki.sign_ca.cert, at=NOW)
                answers.append((i, r.status, r.source))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for n in range(2, 7):
            entries: list[Entry] = [(revoked, R.key_compromise, NOW - DAY, None)]
            store.load(make_crl(pki, entries if n % 2 else [], n), [pki.sign_ca.cert])
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert answers
    for i, status, source in answers:
        assert source.startswith("store:"), source
        if i != 0 or source == "store:crl#1":
            assert status is RevocationStatus.GOOD
        else:  # revoked in #3 for good: every later answer stays revoked (history)
            assert status is RevocationStatus.REVOKED or source == "store:crl#2", (status, source)
    assert store.check(leaves[0].cert, pki.sign_ca.cert, at=NOW).status is (
        RevocationStatus.REVOKED
    )


def test_concurrent_loads_never_go_backwards(pki: TestPki, store_url: str) -> None:
    """Two writers race (#4 and #5, other connections): the current CRL ends at #5 and a
    lower number is refused once the higher one is in."""
    ders = {n: make_crl(pki, [], n) for n in (4, 5)}
    outcome: dict[int, str] = {}

    def load(n: int) -> None:
        with RevocationStore(store_url) as st:
            try:
                st.load(ders[n], [pki.sign_ca.cert])
                outcome[n] = "loaded"
            except CrlError as exc:
                outcome[n] = str(exc)

    threads = [threading.Thread(target=load, args=(n,)) for n in (5, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert outcome[5] == "loaded"
    assert outcome[4] == "loaded" or "backwards" in outcome[4]
    with RevocationStore(store_url) as st:
        assert [c.number for c in st.current()] == [5]


def test_store_of_the_name_keyed_schema_is_refused(tmp_path: Path) -> None:
    """A store made when CRLs were keyed by issuer name is not reused (nor changed)."""
    import sqlite3

    from jpki.errors import RevocationError

    old = tmp_path / "v1.db"
    with sqlite3.connect(old) as db:
        db.execute("CREATE TABLE crl_generation (id INTEGER PRIMARY KEY, issuer BLOB)")
    with pytest.raises(RevocationError, match="older jpki"):
        RevocationStore(old)
    with sqlite3.connect(old) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == {"crl_generation"}


def test_refused_store_message_says_what_to_do_and_doing_it_works(
    pki: TestPki, tmp_path: Path
) -> None:
    """The refusal names the commands to run; running them gives a working store."""
    import sqlite3

    from click.testing import CliRunner

    from jpki.cli import main

    leaf = pki.issue_signing(sample_person(0), label="old-store")
    crl = tmp_path / "sign.crl"
    crl.write_bytes(pki.make_crl("sign", [(leaf.cert.serial_number, R.key_compromise, NOW)]))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.sign_ca.pem)
    old = tmp_path / "my store.db"  # a path that needs quoting in a shell
    with sqlite3.connect(old) as db:
        db.execute("CREATE TABLE crl_generation (id INTEGER PRIMARY KEY, issuer BLOB)")
    load = ["revocation", "store", "load", str(old), str(crl), "--issuer", str(ca)]
    r = CliRunner().invoke(main, load)
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())  # the message may be wrapped
    assert "older jpki (schema 1, CRLs keyed by issuer name)" in text
    assert f"mv '{old}' '{old}.old'" in text, text
    assert f"jpki revocation store load '{old}' CRL... --issuer CA..." in text, text
    assert "reports every revoked certificate once more" in text
    # what the message says, done literally
    old.rename(f"{old}.old")
    r = CliRunner().invoke(main, load)
    assert r.exit_code == 0, r.output
    with RevocationStore(old) as st:
        res = st.status(leaf.cert, pki.sign_ca.cert, at=NOW + timedelta(hours=1))
    assert res.status is RevocationStatus.REVOKED
    # a store of another schema version gets the same instructions
    with sqlite3.connect(old) as db:
        db.execute("UPDATE store_meta SET v = '3' WHERE k = 'schema'")
    from jpki.errors import RevocationError

    with pytest.raises(RevocationError) as info:
        RevocationStore(old)
    assert "has schema 3, this version uses 2" in str(info.value)
    assert f"jpki revocation store load '{old}' CRL... --issuer CA..." in str(info.value)


def test_undoable_entries_found_in_bulk_match_a_plain_decode(pki: TestPki) -> None:
    """``SerialIndex.undoable_offsets`` (bulk) equals decoding every entry, template
    reasonCodes and other extension lists (hold with an invalidityDate) alike."""
    from jpki.revocation.index import decode_entry

    entries: list[Entry] = []
    reasons = [None, R.certificate_hold, R.key_compromise, R.remove_from_crl, R.superseded]
    for i in range(1, 400):
        reason = reasons[i % len(reasons)]
        invalid = NOW - 2 * DAY if i % 7 == 0 else None
        entries.append((i * 7919, reason, NOW - DAY, invalid))
    crl = Crl.load(make_crl(pki, entries, 1))
    idx = crl.index
    _, s, e = crl.layout.revoked or (0, 0, 0)
    buf = memoryview(crl.der)
    want = set()
    pos = s
    while pos < e:
        ent = decode_entry(buf, pos, e)
        if ent.reason in (RevocationReason.CERTIFICATE_HOLD, RevocationReason.REMOVE_FROM_CRL):
            want.add(pos)
        pos = ent.offset + 2 + buf[pos + 1]
    got = set(idx.undoable_offsets().tolist())
    assert got == want and len(want) > 100
    keys = idx.undoable_keys()
    assert not isinstance(keys, set) and len(keys) == len(want)
