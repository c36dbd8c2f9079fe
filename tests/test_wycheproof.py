"""Project Wycheproof RSA PKCS#1 v1.5 vectors (vectors/wycheproof/, Apache-2.0) against every
jpki verification path that takes a signature: ``verify_signature`` and ``verify_batch``
(in process, with and without the optional compiled loop, and on a process pool), and the
flat-chain fast path's CA-signature check (``jpki.verify.flat.rsa_signature_valid``, with
the vector's key as the CA key and its message as the signed TBS bytes). A vector's key goes
into a certificate issued by the test CA (any public key can be certified); ``valid`` must
verify, ``invalid`` must not, ``acceptable`` may go either way. A key cryptography refuses to
load must reject all its vectors (none of them may be ``valid``)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from batch_helpers import certify, certifying_ca
from jpki.cert import JpkiCertificate
from jpki.policy import Policy, Purpose
from jpki.verify import Status
from jpki.verify.batch import BatchItem, verify_batch
from jpki.verify.flat import rsa_signature_valid
from jpki.verify.signature import verify_signature

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "wycheproof"
FILES = sorted(VECTORS.glob("rsa_signature_*_test.json"))
_HASH = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


@dataclass(frozen=True)
class Vector:
    where: str
    cert: bytes | None  # None: the key could not be loaded
    spki: bytes
    hash_alg: str
    msg: bytes
    sig: bytes
    result: str


@cache
def _policy() -> Policy:
    # The test CA as the one anchor, purpose overridden: the verdict is the signature's.
    anchor = JpkiCertificate.from_cryptography(certifying_ca()[0])
    return Policy(anchors=(anchor,), purpose=Purpose.ANY, at=datetime(2026, 3, 2, tzinfo=UTC))


def _certify(spki_der: bytes, serial: int) -> bytes | None:
    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, TypeError):
        return None
    return certify(key, serial, "wycheproof")


@cache
def _vectors(name: str) -> tuple[Vector, ...]:
    data = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    assert data["algorithm"] == "RSASSA-PKCS1-v1_5"
    out = []
    for gi, group in enumerate(data["testGroups"]):
        assert group["type"] == "RsassaPkcs1Verify"
        cert = _certify(bytes.fromhex(group["publicKeyDer"]), 1000 + gi)
        for t in group["tests"]:
            out.append(
                Vector(
                    f"{name} tcId {t['tcId']} ({t['comment']})",
                    cert,
                    bytes.fromhex(group["publicKeyDer"]),
                    _HASH[group["sha"]],
                    bytes.fromhex(t["msg"]),
                    bytes.fromhex(t["sig"]),
                    t["result"],
                )
            )
    return tuple(out)


def _check(vectors: tuple[Vector, ...], verdicts: list[Status | None]) -> None:
    wrong = []
    for v, got in zip(vectors, verdicts, strict=True):
        accepted = got is Status.VALID
        if (v.result == "valid" and not accepted) or (v.result == "invalid" and accepted):
            wrong.append(f"{v.where}: expected {v.result}, got {got}")
    assert not wrong, wrong[:20]


def test_vector_files_present() -> None:
    names = {f.name for f in FILES}
    assert len(names) == 9 and (VECTORS / "LICENSE").exists()
    counts = Counter(v.result for f in FILES for v in _vectors(f.name))
    assert counts["valid"] > 20 and counts["invalid"] > 1000


@pytest.mark.parametrize("name", [f.name for f in FILES])
def test_verify_signature_agrees(name: str) -> None:
    vectors = _vectors(name)
    verdicts: list[Status | None] = []
    for v in vectors:
        if v.cert is None:
            verdicts.append(None)
            continue
        r = verify_signature(v.cert, v.sig, data=v.msg, hash_alg=v.hash_alg, policy=_policy())
        verdicts.append(r.status)
    _check(vectors, verdicts)


def _items(vectors: tuple[Vector, ...]) -> tuple[list[BatchItem], list[int]]:
    loadable = [i for i, v in enumerate(vectors) if v.cert is not None]
    items = [
        BatchItem(vectors[i].cert or b"", vectors[i].sig, data=vectors[i].msg,
                  hash_alg=vectors[i].hash_alg)
        for i in loadable
    ]  # fmt: skip
    return items, loadable


def _batch_verdicts(vectors: tuple[Vector, ...], **kw: object) -> list[Status | None]:
    items, loadable = _items(vectors)
    results = verify_batch(items, policy=_policy(), **kw)  # type: ignore[arg-type]
    verdicts: list[Status | None] = [None] * len(vectors)
    for i, r in zip(loadable, results, strict=True):
        verdicts[i] = r.status
    return verdicts


@pytest.mark.parametrize("name", [f.name for f in FILES])
def test_verify_batch_in_process_agrees(name: str) -> None:
    vectors = _vectors(name)
    _check(vectors, _batch_verdicts(vectors, workers=1, native=False))


@pytest.mark.usefixtures("native_loop")
@pytest.mark.parametrize("name", [f.name for f in FILES])
def test_verify_batch_native_loop_agrees(name: str) -> None:
    # The optional compiled loop (jpki.verify.native): the same verdict on every vector.
    vectors = _vectors(name)
    verdicts = _batch_verdicts(vectors, workers=1, native=True, chunk_size=100)
    _check(vectors, verdicts)
    assert verdicts == _batch_verdicts(vectors, workers=1, native=False)


def test_verify_batch_process_pool_agrees() -> None:
    # One file through the process pool: the workers' code path (key cache, chunking).
    vectors = _vectors("rsa_signature_2048_sha256_test.json")
    _check(vectors, _batch_verdicts(vectors, workers=2, chunk_size=64))


_HASH_CLS = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


@cache
def _rsa_key(spki_der: bytes) -> rsa.RSAPublicKey | None:
    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, rsa.RSAPublicKey) else None


@pytest.mark.parametrize("name", [f.name for f in FILES])
def test_flat_path_ca_signature_check_agrees(name: str) -> None:
    # The vector's key stands for the anchor's, its message for the leaf's TBS bytes: the
    # very callable flat_chain uses to accept a leaf's signature under its CA.
    vectors = _vectors(name)
    verdicts: list[Status | None] = []
    for v in vectors:
        key = _rsa_key(v.spki)
        ok = rsa_signature_valid(key, v.sig, v.msg, _HASH_CLS[v.hash_alg])
        verdicts.append(Status.VALID if ok else Status.INVALID)
    _check(vectors, verdicts)
    # Loadable keys agree with the certificates made for the other paths.
    assert all((_rsa_key(v.spki) is None) == (v.cert is None) for v in vectors)
