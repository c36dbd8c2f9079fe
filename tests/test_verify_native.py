"""The optional compiled loop (jpki.verify.native) against the pure-Python batch loop: the same
results, in the same order, on valid, random and adversarial inputs; and the loop itself
accepts exactly the items whose signature plainly matches. Skips when the module is not built,
except under CI=true, where it must be (.ci/run builds it)."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_helpers import NOW, certify, certifying_ca
from jpki.cert import JpkiCertificate
from jpki.digestinfo import PREFIXES, PREFIXES_NO_NULL, HashName
from jpki.policy import LEGACY_ALGORITHMS, Policy, Purpose
from jpki.verify import Code, native
from jpki.verify.batch import BatchItem, _chunk, _entry, _native_key, verify_batch

pytestmark = pytest.mark.usefixtures("native_loop")  # tests/conftest.py: skip or fail


@dataclass(frozen=True)
class Signer:
    key: rsa.RSAPrivateKey
    der: bytes


@cache
def _signers() -> tuple[Signer, ...]:
    out = []
    for serial, size in enumerate((2048, 2048, 3072, 1024), start=10):
        key = rsa.generate_private_key(65537, size)
        out.append(Signer(key, certify(key.public_key(), serial, "native")))
    return tuple(out)


@cache
def _ec_cert() -> bytes:
    return certify(ec.generate_private_key(ec.SECP256R1()).public_key(), 99, "native")


def _policies() -> list[Policy]:
    anchor = JpkiCertificate.from_cryptography(certifying_ca()[0])
    at = NOW + timedelta(days=1)
    return [
        Policy(anchors=(anchor,), purpose=Purpose.ANY, at=at),
        Policy(anchors=(anchor,), purpose=Purpose.ANY, at=at, algorithms=LEGACY_ALGORITHMS),
        Policy(at=at),  # no anchors: indeterminate at best, reasons still differ per item
    ]


_HASH = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(),
         "sha512": hashes.SHA512()}  # fmt: skip


def _raw_sign(key: rsa.RSAPrivateKey, em: bytes) -> bytes:
    """The RSA private operation on an encoded message of our own making (bad paddings)."""
    n = key.public_key().public_numbers().n
    d = key.private_numbers().d
    size = (key.key_size + 7) // 8
    return pow(int.from_bytes(em, "big"), d, n).to_bytes(size, "big")


def _em(size: int, payload: bytes, *, head: bytes = b"\x00\x01", fill: int = 0xFF) -> bytes:
    return head + bytes([fill]) * (size - len(head) - 1 - len(payload)) + b"\x00" + payload


@cache
def _adversarial_items() -> tuple[BatchItem, ...]:
    return tuple(_make_adversarial())


def _adversarial() -> list[BatchItem]:
    """One of each way an item can be wrong, beside valid ones, for every signer."""
    return list(_adversarial_items())


def _make_adversarial() -> list[BatchItem]:
    items: list[BatchItem] = []
    signers = _signers()
    for si, s in enumerate(signers):
        size = (s.key.key_size + 7) // 8
        other = signers[(si + 1) % len(signers)]
        for h in ("sha256", "sha384", "sha512", "sha1"):
            data = f"document {si} {h}".encode()
            sig = s.key.sign(data, padding.PKCS1v15(), _HASH[h])
            dig = hashlib.new(h, data).digest()
            items += [
                BatchItem(s.der, sig, data=data, hash_alg=h),
                BatchItem(s.der, sig, digest=dig, hash_alg=h),
                BatchItem(s.der, sig, data=data, digest=dig, hash_alg=h),  # both, agreeing
                BatchItem(s.der, sig, data=data + b"!", hash_alg=h),  # altered data
                BatchItem(s.der, sig, data=data, digest=b"\0" * len(dig), hash_alg=h),
                BatchItem(s.der, sig, digest=dig[:-1], hash_alg=h),  # digest too short
                BatchItem(other.der, sig, data=data, hash_alg=h),  # wrong key
                BatchItem(s.der, sig[:-1], data=data, hash_alg=h),  # signature too short
                BatchItem(s.der, sig + b"\0", data=data, hash_alg=h),  # too long
                BatchItem(s.der, b"\0" + sig[1:], data=data, hash_alg=h),
                BatchItem(s.der, b"\xff" * size, data=data, hash_alg=h),  # >= the modulus
                BatchItem(s.der, b"\0" * size, data=data, hash_alg=h),
                BatchItem(s.der, b"", data=data, hash_alg=h),
                BatchItem(s.der, sig, hash_alg=h),  # neither data nor digest
                BatchItem(s.der, sig, data=bytearray(data), hash_alg=h),  # not bytes
                BatchItem(s.der, sig, data=memoryview(data), hash_alg=h),
            ]
            wrong_h = "sha384" if h == "sha256" else "sha256"
            items.append(BatchItem(s.der, sig, data=data, hash_alg=wrong_h))  # other digest
        # Crafted encodings: each differs from a valid one in one place.
        data = f"crafted {si}".encode()
        di = PREFIXES[HashName.SHA256] + hashlib.sha256(data).digest()
        crafted = [
            _em(size, di),  # valid, for reference
            _em(size, di, head=b"\x00\x02"),  # block type 2
            _em(size, di, fill=0xFE),  # padding bytes not 0xff
            b"\x00\x01" + b"\xff" * 7 + b"\x00" + di.rjust(size - 10, b"\x00"),  # short pad
            b"\x00\x01" + b"\xff" * (size - 2 - len(di)) + di,  # no zero separator
            _em(size, PREFIXES_NO_NULL[HashName.SHA256] + hashlib.sha256(data).digest()),
            _em(size, di + b"\x00"),  # trailing garbage
            _em(size, hashlib.sha256(data).digest()),  # bare digest, no DigestInfo
            _em(size, PREFIXES[HashName.SHA384] + hashlib.sha384(data).digest()),
            _em(size, di[:-1] + bytes([di[-1] ^ 1])),  # last digest byte flipped
        ]
        for em in crafted:
            items.append(BatchItem(s.der, _raw_sign(s.key, em), data=data))
    sig0 = signers[0].key.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
    items += [
        BatchItem(_ec_cert(), sig0, data=b"x"),  # not an RSA key
        BatchItem(b"\x30\x03garbage", sig0, data=b"x"),  # not a certificate
    ]
    return items


def _same(items: list[BatchItem], policy: Policy, **kw: object) -> None:
    pure = verify_batch(items, policy=policy, native=False, **kw)  # type: ignore[arg-type]
    fast = verify_batch(items, policy=policy, native=True, **kw)  # type: ignore[arg-type]
    assert len(fast) == len(items)
    for i, (a, b) in enumerate(zip(pure, fast, strict=True)):
        assert a == b, (i, a, b)


@pytest.mark.parametrize("pi", range(3))
def test_adversarial_items_same_results(pi: int) -> None:
    items = _adversarial()
    _same(items, _policies()[pi], chunk_size=37)
    _same(items, _policies()[pi])  # one chunk


def _native_left(items: list[BatchItem]) -> set[int]:
    """The items the compiled loop itself leaves for Python (not plainly valid)."""
    certs, plan_keys, pis, sigs, datas, digests = _chunk(items, {}, Purpose.ANY)
    keys = [_native_key(_entry(d)) for d in certs]
    plans = [(ci, native.HASH_BITS.get(h, 0), PREFIXES[HashName(h)]) for ci, h, _ in plan_keys]
    left = native.verify_many(keys, plans, pis, sigs, datas, digests)
    assert left is not None and left == sorted(left)
    return set(left)


def test_loop_accepts_exactly_the_plain_matches() -> None:
    items = _adversarial()
    left = _native_left(items)
    results = verify_batch(items, policy=_policies()[1], native=False)
    for i, (it, r) in enumerate(zip(items, results, strict=True)):
        ok = r.reasons[0].code is Code.SIGNATURE_OK
        # What this loop takes: SHA-2, bytes, data or digest alone; the rest stays in Python.
        handled = (
            it.hash_alg != "sha1"
            and type(it.data) in (bytes, type(None))
            and (it.data is None or it.digest is None)
        )
        if i in left:
            assert not (ok and handled), (i, it, r)
        else:
            assert ok and handled, (i, it, r)
    assert len(left) < len(items) - 20  # it did take the valid ones


def test_empty_batch_and_empty_call() -> None:
    assert verify_batch([], native=True) == []
    assert native.verify_many([], [], [], [], [], []) == []


def test_bad_call_arguments_raise() -> None:
    key = _native_key(_entry(_signers()[0].der))
    plan = [(0, 256, PREFIXES[HashName.SHA256])]
    with pytest.raises(ValueError):
        native.verify_many([key], plan, [0], [], [], [])
    with pytest.raises(IndexError):
        native.verify_many([key], plan, [1], [b""], [None], [None])
    with pytest.raises(IndexError):
        native.verify_many([key], [(1, 256, b"")], [0], [b""], [None], [None])
    with pytest.raises(TypeError):
        native.verify_many([b"not a key"], plan, [0], [b""], [None], [None])


def test_a_refused_key_is_left_to_python() -> None:
    assert native.make_key(15, 3) is None  # far too small: the loop does not take it
    assert native.make_key(2**2048 - 1, 65537) is not None
    assert native.verify_many([None], [(0, 256, b"")], [0], [b"s"], [b"d"], [None]) == [0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(
        st.tuples(
            st.integers(0, 3),  # signer
            st.sampled_from(["sha256", "sha384", "sha512"]),
            st.binary(max_size=64),  # data
            st.integers(0, 5),  # how the signature is spoiled
            st.integers(0, 10**6),
        ),
        max_size=12,
    )
)
def test_random_batches_same_results(picks: list[tuple[int, str, bytes, int, int]]) -> None:
    signers = _signers()
    items = []
    for si, h, data, spoil, n in picks:
        s = signers[si]
        sig = bytearray(s.key.sign(data, padding.PKCS1v15(), _HASH[h]))
        if spoil == 1:
            sig[n % len(sig)] ^= 1 << (n % 8)
        elif spoil == 2:
            sig = bytearray(n.to_bytes(len(sig), "big"))
        elif spoil == 3:
            sig = sig[: n % len(sig)]
        if spoil == 4:
            items.append(BatchItem(s.der, bytes(sig), digest=hashlib.new(h, data).digest(),
                                   hash_alg=h))  # fmt: skip
        else:
            items.append(BatchItem(s.der, bytes(sig), data=data, hash_alg=h))
    _same(items, _policies()[1], chunk_size=5)


def test_threads_share_keys_and_agree() -> None:
    # Two threads verifying with the same keys at once: each call borrows or makes a context.
    items = [it for it in _adversarial() if it.hash_alg != "sha1"] * 3
    want = verify_batch(items, policy=_policies()[0], native=False)
    got: list[object] = []

    def run() -> None:
        for _ in range(3):
            got.append(verify_batch(items, policy=_policies()[0], native=True, chunk_size=50))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6 and all(g == want for g in got)
