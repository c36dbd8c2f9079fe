"""verify_batch: input order, executors, per-item failures, agreement with verify_signature."""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki.errors import UsageError
from jpki.testing.pki import TestPki, sample_person
from jpki.verify import BatchItem, Code, Policy, Status, verify_batch, verify_signature


@pytest.fixture(scope="module")
def items(test_pki: TestPki) -> list[BatchItem]:
    a = test_pki.issue_signing(sample_person(0))
    b = test_pki.issue_signing(sample_person(1))
    auth = test_pki.issue_auth()
    out: list[BatchItem] = []
    for i in range(60):
        data = f"document {i}".encode()
        who = (a, b, auth)[i % 3]
        sig = who.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        kind = i % 6
        if kind == 0:
            out.append(BatchItem(who.der, sig, data=data))
        elif kind == 1:
            out.append(BatchItem(who.cert, sig, digest=hashlib.sha256(data).digest()))
        elif kind == 2:
            out.append(BatchItem(who.der, sig, data=data, purpose="login"))
        elif kind == 3:
            out.append(BatchItem(who.der, sig, data=data + b"!"))  # altered data
        elif kind == 4:
            out.append(BatchItem(a.der if who is not a else b.der, sig, data=data))  # wrong cert
        else:
            out.append(BatchItem(who.der, sig, data=data, purpose="any"))
    return out


def _expected(items: list[BatchItem], policy: Policy) -> list[tuple[Status, tuple[str, ...]]]:
    res = []
    for it in items:
        r = verify_signature(
            it.certificate,
            it.signature,
            data=it.data,
            digest=it.digest,
            hash_alg=it.hash_alg,
            policy=replace(policy, purpose=it.purpose) if it.purpose else policy,
        )
        res.append((r.status, r.reasons))
    return res


def test_in_process_matches_single_verification(
    items: list[BatchItem], test_policy: Policy
) -> None:
    got = verify_batch(items, chunk_size=7, policy=test_policy)
    assert [(r.status, r.reasons) for r in got] == _expected(items, test_policy)
    statuses = {r.status for r in got}
    assert statuses == {Status.VALID, Status.INVALID}


@pytest.mark.parametrize("kind", ["threads", "processes", "own-pool"])
def test_executors_keep_input_order(items: list[BatchItem], kind: str, test_policy: Policy) -> None:
    want = [
        (r.status, r.reasons, r.certificate_fingerprint)
        for r in verify_batch(items, policy=test_policy)
    ]
    if kind == "threads":
        with ThreadPoolExecutor(3) as ex:
            got = verify_batch(items, ex, chunk_size=5, policy=test_policy)
    elif kind == "processes":
        with ProcessPoolExecutor(2) as ex:
            got = verify_batch(items, ex, chunk_size=9, policy=test_policy)
    else:
        got = verify_batch(items, workers=2, policy=test_policy)
    assert [(r.status, r.reasons, r.certificate_fingerprint) for r in got] == want


def test_tuples_progress_and_bad_items(items: list[BatchItem], test_policy: Policy) -> None:
    first = items[0]
    done: list[int] = []
    got = verify_batch(
        [
            (first.certificate, first.signature, first.data),
            (b"\x30\x03garbage", first.signature, first.data),
            BatchItem(first.certificate, first.signature, digest=b"\0" * 5),
            BatchItem(first.certificate, first.signature),
        ],
        chunk_size=2,
        progress=done.append,
        policy=test_policy,
    )
    assert done == [2, 2]
    assert got[0].status is Status.VALID
    assert got[1].status is Status.INVALID and "unusable certificate" in got[1].reasons[0]
    assert got[2].status is Status.INVALID and "32 bytes" in got[2].reasons[0]
    assert got[3].status is Status.INVALID and "neither data nor digest" in got[3].reasons[0]
    assert verify_batch([], policy=test_policy) == []


def test_usage_errors(items: list[BatchItem], test_policy: Policy) -> None:
    it = items[0]
    with pytest.raises(UsageError):
        verify_batch(
            [BatchItem(it.certificate, it.signature, data=b"x", hash_alg="md5")], policy=test_policy
        )
    with pytest.raises(UsageError):
        verify_batch(
            [BatchItem(it.certificate, it.signature, data=b"x", purpose="nope")], policy=test_policy
        )


def test_bench_parses_openssl_speed_output() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_verify.py"
    spec = importlib.util.spec_from_file_location("bench_verify", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = (
        "version: 3.0.19\n"
        "                  sign    verify    sign/s verify/s\n"
        "rsa 2048 bits 0.000282s 0.000015s   3552.0  64677.4\n"
    )
    assert mod.parse_openssl_speed(out) == pytest.approx(64677.4)
    with pytest.raises(ValueError):
        mod.parse_openssl_speed("nothing here")


def test_spellings_of_one_hash_and_purpose_share_a_plan(
    items: list[BatchItem], test_policy: Policy
) -> None:
    from jpki.verify import HashAlgorithm, Purpose

    it = items[0]
    spelled = [
        BatchItem(it.certificate, it.signature, data=it.data, hash_alg=h, purpose=p)
        for h in ("sha256", "SHA-256", HashAlgorithm.SHA256)
        for p in ("sign", Purpose.SIGN)
    ]
    wrong_len = BatchItem(it.certificate, it.signature, data=it.data, digest=b"\0" * 20)
    got = verify_batch([*spelled, wrong_len, *spelled], chunk_size=64, policy=test_policy)
    assert [r.status for r in got] == [Status.VALID] * 6 + [Status.INVALID] + [Status.VALID] * 6
    assert got[0] is got[5]  # plain valid results for one certificate are shared
    assert "32 bytes" in got[6].reasons[0]


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 200_000),
    workers=st.integers(1, 64),
    fixed=st.one_of(st.none(), st.integers(1, 5000)),
)
def test_chunk_spans_cover_the_batch_in_order(n: int, workers: int, fixed: int | None) -> None:
    from jpki.verify.batch import _MIN_CHUNK, _sizes

    spans = list(_sizes(n, fixed, workers))
    assert [a for a, _b in spans] == [0, *(b for _a, b in spans)][: len(spans)]
    assert (spans[-1][1] if spans else 0) == n
    sizes = [b - a for a, b in spans]
    assert all(s >= 1 for s in sizes)
    if fixed is not None:
        assert all(s == fixed for s in sizes[:-1])
    else:
        # Guided: never growing, never below the floor but at the very end, and few of them.
        assert sizes == sorted(sizes, reverse=True)
        assert all(s >= _MIN_CHUNK for s in sizes[:-1])
        assert len(sizes) <= 2 * workers * 12 + 1


def test_guided_chunks_through_an_executor(items: list[BatchItem], test_policy: Policy) -> None:
    many = items * 25  # 1500 items: several guided chunks of the 500-item floor and above
    want = [(r.status, r.reasons) for r in verify_batch(items, policy=test_policy)] * 25
    done: list[int] = []
    with ThreadPoolExecutor(2) as ex:
        got = verify_batch(many, ex, progress=done.append, policy=test_policy)
    assert [(r.status, r.reasons) for r in got] == want
    assert sum(done) == len(many) and len(done) > 1


def test_data_and_digest_must_both_match(items: list[BatchItem], test_policy: Policy) -> None:
    it = items[0]
    assert it.data is not None
    good = hashlib.sha256(it.data).digest()
    other = hashlib.sha256(b"a document the signature does not cover").digest()
    both = [
        BatchItem(it.certificate, it.signature, data=it.data, digest=good),
        BatchItem(it.certificate, it.signature, data=b"other data", digest=good),
        BatchItem(it.certificate, it.signature, data=it.data, digest=other),
    ]
    ok, data_differs, digest_differs = verify_batch(both, policy=test_policy)
    assert ok.status is Status.VALID, ok.reasons
    for r in (data_differs, digest_differs):
        assert r.status is Status.INVALID
        assert r.reasons[0].code is Code.DATA_DIGEST_MISMATCH


def test_without_trust_every_item_is_at_best_indeterminate(items: list[BatchItem]) -> None:
    got = verify_batch(items)
    assert Status.VALID not in {r.status for r in got}
    assert all(r.has(Code.CHAIN_NOT_VALIDATED) for r in got)
    assert {r.status for r in got} == {Status.INDETERMINATE, Status.INVALID}


def test_native_switches(
    items: list[BatchItem], test_policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # JPKI_NATIVE=0 and native=False keep the compiled loop out; by default it is used where
    # built; native=True without it is a usage error; without it the results are the same.
    from jpki.verify import native

    calls: list[int] = []
    real = native.verify_many

    def spy(*args: object) -> list[int] | None:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(native, "verify_many", spy)
    some = items[:12]
    want = verify_batch(some, policy=test_policy, native=False)
    assert not native.enabled(False) and calls == []
    monkeypatch.setenv("JPKI_NATIVE", "0")
    assert not native.enabled()
    assert verify_batch(some, policy=test_policy) == want and calls == []
    monkeypatch.delenv("JPKI_NATIVE")
    assert native.enabled() is native.available()
    assert verify_batch(some, policy=test_policy) == want
    assert calls == ([1] if native.available() else [])
    monkeypatch.setattr(native, "_load", lambda: (None, "not built here"))
    assert not native.enabled() and native.verify_many([], [], [], [], [], []) is None
    assert native.make_key(3, 5) is None and native.openssl_version() is None
    with pytest.raises(UsageError, match="not built here"):
        verify_batch(some, policy=test_policy, native=True)
    assert verify_batch(some, policy=test_policy) == want


def test_short_signature_is_refused_as_verify_signature_does(
    test_pki: TestPki, test_policy: Policy
) -> None:
    # A signature with its leading zero byte dropped: recover() takes it, PKCS#1 does not.
    who = test_pki.issue_signing(sample_person(0))
    for i in range(4000):
        data = f"short {i}".encode()
        sig = who.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if sig[0] == 0:
            break
    else:
        pytest.fail("no signature with a leading zero byte in 4000 tries")
    single = verify_signature(who.der, sig[1:], data=data, policy=test_policy)
    assert single.status is Status.INVALID
    assert single.reasons[0].code is Code.SIGNATURE_LENGTH
    for nat in (False, None):
        got = verify_batch([BatchItem(who.der, sig[1:], data=data)], policy=test_policy, native=nat)
        assert (got[0].status, got[0].reasons) == (single.status, single.reasons)
    assert verify_batch([BatchItem(who.der, sig, data=data)], policy=test_policy)[0].status is (
        Status.VALID
    )
