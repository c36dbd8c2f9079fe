"""Many signature verifications at once, in input order, optionally over processes.

Work is cut into chunks; a chunk carries each distinct certificate once as raw DER and the
items column-wise as plain lists (bytes and ints: cheap to build and pickle, no objects).
Workers keep parsed public keys and the key-usage verdicts per certificate fingerprint across
chunks, so the hot loop is: hash, one RSA public-key operation, one constant-time compare;
they answer with explanations only for the items that are not plainly valid.

The caller's process competes with the workers for the cores, so its per-item work is kept
small: chunks are submitted as soon as they are cut (workers start at once), sized so a big
batch needs few round trips (guided: each takes a share of what is left, so the tail is short),
and results are one shared VALID object per certificate, patched where something failed.

Any ``concurrent.futures.Executor`` works (a process pool, a thread pool, a cluster
executor); without one, large batches get a process pool sized to the machine.

With the optional compiled loop (:mod:`jpki.verify.native`), a worker hands the whole chunk to
it first (GIL released, one OpenSSL context per key) and runs the Python loop below only on
the items it did not find plainly valid: the verdicts and their explanations stay Python's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

import jpki.verify.native as _native_loop
from jpki.cert import JpkiCertificate
from jpki.digestinfo import DIGEST_SIZES, PREFIXES, HashAlgorithm, hash_algorithm
from jpki.errors import JpkiError
from jpki.policy import Policy, Purpose, check_time, purpose_of
from jpki.verify.path import validate_chain
from jpki.verify.result import Code, Reason, Status, VerificationResult, worst
from jpki.verify.rules import algorithm_reasons
from jpki.verify.signature import check_rsa_pkcs1, rsa_public_key

#: Chunk size in this process (only the progress granularity depends on it).
DEFAULT_CHUNK = 512
#: Smallest chunk sent to an executor: below this, round trips dominate.
_MIN_CHUNK = 500
#: Below this many items a process pool costs more than it saves.
PARALLEL_THRESHOLD = 4000
_CACHE_LIMIT = 4096
_PKCS1 = padding.PKCS1v15()
_OK = Reason(Code.SIGNATURE_OK, "signature matches the certificate's key")
_HASHERS: dict[str, Callable[[bytes], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


@dataclass(frozen=True)
class BatchItem:
    """One signature to check: over ``data``, or a precomputed ``digest``, or both (then the
    digest must be the data's). ``purpose`` None: the policy's (default: document signature).
    """

    certificate: bytes | JpkiCertificate | x509.Certificate
    signature: bytes
    data: bytes | None = None
    digest: bytes | None = None
    hash_alg: HashAlgorithm | str = HashAlgorithm.SHA256
    purpose: Purpose | str | None = None


# --- worker side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _KeyEntry:
    key: rsa.RSAPublicKey | None
    meta: tuple[str, str, str]  # fingerprint, kind, subject
    error: Reason | None


_CACHE: dict[bytes, _KeyEntry] = {}


def _entry(der: bytes) -> _KeyEntry:
    fp = hashlib.sha256(der).digest()
    hit = _CACHE.get(fp)
    if hit is not None:
        return hit
    try:
        jc = JpkiCertificate.load(der)
        key = rsa_public_key(jc)
        entry = _KeyEntry(key, (fp.hex(), jc.kind.value, jc.subject_text), None)
    except JpkiError as exc:
        why = Reason(Code.CERT_MALFORMED, f"unusable certificate: {exc}")
        entry = _KeyEntry(None, (fp.hex(), "unknown", ""), why)
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
        _NATIVE_KEYS.clear()
    _CACHE[fp] = entry
    return entry


#: The compiled loop's key handles, by certificate fingerprint (made on first native use).
_NATIVE_KEYS: dict[str, object | None] = {}


def _native_key(e: _KeyEntry) -> object | None:
    fp = e.meta[0]
    if fp in _NATIVE_KEYS:
        return _NATIVE_KEYS[fp]
    nk = None
    if e.key is not None:
        pn = e.key.public_numbers()
        nk = _native_loop.make_key(pn.n, pn.e)
    _NATIVE_KEYS[fp] = nk
    return nk


#: A plan: (certificate index, hash name, purpose name), shared by the items that use it.
_PlanKey = tuple[int, str, str]
#: A chunk, column-wise (plain lists pickle fast and build fast): distinct certificate DERs,
#: distinct plans, then per item its plan index, signature, data and digest.
_Chunk = tuple[
    list[bytes], list[_PlanKey], list[int], list[bytes], list[bytes | None], list[bytes | None]
]
#: Worker answer: one (fingerprint, kind, subject) per certificate, and only for the items
#: whose signature does not plainly match: item index -> the reason.
_Answer = tuple[list[tuple[str, str, str]], dict[int, Reason]]


def _slow(
    e: _KeyEntry, sig: bytes, data: bytes | None, digest: bytes | None, h: str
) -> Reason | None:
    """Why the signature does not match (None: it does, after all)."""
    key = e.key
    if key is None:
        return e.error or Reason(Code.CERT_MALFORMED, "unusable certificate")
    alg = HashAlgorithm(h)
    if digest is not None and len(digest) != DIGEST_SIZES[alg]:
        return Reason(Code.INPUT_MALFORMED, f"a {h} digest is {DIGEST_SIZES[alg]} bytes")
    if data is not None:
        computed = _HASHERS[h](data).digest()
        if digest is not None and not hmac.compare_digest(computed, digest):
            return Reason(
                Code.DATA_DIGEST_MISMATCH,
                f"the digest given is not the {h} digest of the data given (both must match)",
            )
        digest = computed
    if digest is None:
        return Reason(Code.INPUT_MALFORMED, "neither data nor digest given")
    return check_rsa_pkcs1(key, sig, PREFIXES[alg] + digest)


def _verify_chunk(chunk: _Chunk, use_native: bool = False) -> _Answer:
    """Worker entry point: plain data in, plain data out (picklable, no jpki objects).
    ``use_native``: try the compiled loop first, where this worker has it."""
    certs, plan_keys, pis, sigs, datas, digests = chunk
    entries = [_entry(d) for d in certs]
    # Everything that depends only on (certificate, hash, purpose) is settled once per plan,
    # so the per-item loop is: hash, one RSA public-key operation, one constant-time compare.
    plans: list[tuple[Any, bytes, Callable[[bytes], Any], int, int] | None] = []
    for ci, h, _purpose in plan_keys:
        e = entries[ci]
        key = e.key
        plans.append(
            None
            if key is None
            else (
                key.recover_data_from_signature,
                PREFIXES[h],  # type: ignore[index]
                _HASHERS[h],
                DIGEST_SIZES[h],  # type: ignore[index]
                (key.key_size + 7) // 8,
            )
        )
    fails: dict[int, Reason] = {}
    if use_native:
        # The compiled loop answers which items are not plainly valid; only those go on, and
        # straight to the slow path (which also accepts what the loop leaves to Python: SHA-1,
        # non-bytes data, data with digest), so a failure costs no third RSA operation.
        native_plans = [
            (ci, _native_loop.HASH_BITS.get(h, 0), PREFIXES[HashAlgorithm(h)])
            for ci, h, _ in plan_keys
        ]
        left = _native_loop.verify_many(
            [_native_key(e) for e in entries], native_plans, pis, sigs, datas, digests
        )
        if left is not None:
            for i in left:
                ci, h, _purpose = plan_keys[pis[i]]
                why = _slow(entries[ci], sigs[i], datas[i], digests[i], h)
                if why is not None:
                    fails[i] = why
            return [e.meta for e in entries], fails
    compare = hmac.compare_digest
    pkcs1 = _PKCS1
    for i, (pi, sig, data, digest) in enumerate(zip(pis, sigs, datas, digests, strict=True)):
        plan = plans[pi]
        if plan is not None:
            recover, prefix, hasher, size, sig_size = plan
            d = digest
            if data is not None:
                # With both, the slow path compares them: never trust a digest alone.
                d = hasher(data).digest() if digest is None else None
            # The length check: recover() takes a signature shorter than the modulus (its
            # leading zero bytes dropped), which PKCS#1 and verify_signature refuse.
            if d is not None and len(d) == size and len(sig) == sig_size:
                # recover + compare is ~15% faster than cryptography's verify(): no second
                # hash pass and no EVP digest context per call.
                try:
                    if compare(recover(sig, pkcs1, None), prefix + d):
                        continue
                except (InvalidSignature, ValueError):
                    pass
        ci, h, _purpose = plan_keys[pi]
        why = _slow(entries[ci], sig, data, digest, h)
        if why is not None:
            fails[i] = why
    return [e.meta for e in entries], fails


# --- caller side ---------------------------------------------------------------------------


def _to_der(cert: bytes | JpkiCertificate | x509.Certificate, memo: dict[int, bytes]) -> bytes:
    if isinstance(cert, bytes):
        return cert
    der = memo.get(id(cert))
    if der is None:
        der = cert.der if isinstance(cert, JpkiCertificate) else cert.public_bytes(Encoding.DER)
        memo[id(cert)] = der
    return der


def _as_item(item: BatchItem | Sequence[Any]) -> BatchItem:
    if isinstance(item, BatchItem):
        return item
    return BatchItem(*item)


def _chunk(items: Sequence[BatchItem], memo: dict[int, bytes], default: Purpose) -> _Chunk:
    cert_index: dict[bytes, int] = {}
    certs: list[bytes] = []
    # Keyed by the caller's own objects: a hash/purpose spelling is normalised once.
    plan_index: dict[tuple[bytes, object, object], int] = {}
    plan_keys: list[_PlanKey] = []
    pis: list[int] = []
    append = pis.append
    for it in items:
        cert = it.certificate
        der = cert if type(cert) is bytes else _to_der(cert, memo)
        key = (der, it.hash_alg, it.purpose)
        pi = plan_index.get(key)
        if pi is None:
            h = hash_algorithm(it.hash_alg).value
            p = (purpose_of(it.purpose) if it.purpose is not None else default).value
            ci = cert_index.get(der)
            if ci is None:
                ci = cert_index[der] = len(certs)
                certs.append(der)
            pi = plan_index[key] = len(plan_keys)
            plan_keys.append((ci, h, p))
        append(pi)
    sigs = [it.signature for it in items]
    if not all(type(sig) is bytes for sig in sigs):
        sigs = [bytes(sig) for sig in sigs]
    return certs, plan_keys, pis, sigs, [it.data for it in items], [it.digest for it in items]


def _sizes(n: int, fixed: int | None, workers: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of each chunk. ``fixed``: that size. Otherwise, guided: each chunk takes
    1/(2 x workers) of what is left, so a big batch needs few round trips and the last chunks
    are small enough that no worker idles long at the end.
    """
    start = 0
    while start < n:
        guided = max(_MIN_CHUNK, -(-(n - start) // (2 * workers)))
        size = fixed if fixed is not None else guided
        stop = min(n, start + size)
        yield start, stop
        start = stop


@dataclass(frozen=True)
class _Verdict:
    """The policy's verdict on one (certificate, hash, purpose), shared by its items."""

    chain: VerificationResult  # purpose, validity, anchors, revocation
    problems: tuple[Reason, ...]  # algorithm rule
    notes: tuple[Reason, ...]
    ok: VerificationResult  # the whole result for an item whose signature matched


def _verdict(der: bytes, h: str, purpose: str, policy: Policy) -> _Verdict | None:
    try:
        cert = JpkiCertificate.load(der)
        chain = validate_chain(cert, replace(policy, purpose=Purpose(purpose)))
        problems, notes = algorithm_reasons(policy.algorithms, cert, h)
    except JpkiError:
        return None  # the worker reports the certificate as unusable
    v = _Verdict(chain, tuple(problems), tuple(notes), chain)
    return replace(v, ok=_combine(None, v))


def _combine(why: Reason | None, v: _Verdict) -> VerificationResult:
    first = why if why is not None else _OK
    status = Status.INVALID if why is not None or v.problems else Status.VALID
    return replace(
        v.chain,
        status=worst((status, v.chain.status)),
        reasons=(first, *v.problems, *v.chain.reasons, *v.notes),
    )


def _unusable(why: Reason, meta: tuple[str, str, str]) -> VerificationResult:
    fp, kind, subject = meta
    return VerificationResult(
        Status.INVALID,
        (why,),
        certificate_fingerprint=fp,
        certificate_kind=kind,
        subject=subject or None,
    )


def verify_batch(
    items: Iterable[BatchItem | Sequence[Any]],
    executor: Executor | None = None,
    *,
    chunk_size: int | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    policy: Policy | None = None,
    native: bool | None = None,
) -> list[VerificationResult]:
    """Verify many signatures; results in input order, one per item.

    ``policy`` (default ``Policy()``: no anchors) is applied to every item the way
    :func:`verify_signature` applies it: chain, purpose, validity, revocation and algorithms,
    decided once per distinct certificate. Without anchors every item says the chain was not
    validated and is at best INDETERMINATE.

    ``executor``: any ``concurrent.futures.Executor``; if None, batches of at least
    ``PARALLEL_THRESHOLD`` items (or any batch when ``workers`` > 1 is given) run on a
    process pool of ``workers`` (default: CPU count), smaller ones in this process.
    ``chunk_size``: items per chunk; default: guided sizes for an executor (few large chunks
    first, smaller ones at the end), ``DEFAULT_CHUNK`` in this process.
    ``progress`` is called with the number of items finished after each chunk.
    ``native``: use the optional compiled loop (:mod:`jpki.verify.native`; same results);
    default: when it is built and ``JPKI_NATIVE`` is not ``0``; True without it: ``UsageError``.
    Executor workers use it where they have it.
    A bad item (unparsable certificate, non-RSA key) gives an ``invalid`` result for that
    item, not an exception; bad arguments (unknown hash or purpose) raise ``UsageError``.
    """
    pol = policy if policy is not None else Policy()
    pol = replace(pol, at=check_time(pol.time()))
    default_purpose = pol.purpose_for(Purpose.SIGN)
    use_native = _native_loop.enabled(native)
    seq = [i if type(i) is BatchItem else _as_item(i) for i in items]
    fixed = chunk_size if chunk_size is not None and chunk_size >= 1 else None
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    own_pool: ProcessPoolExecutor | None = None
    if (
        executor is None
        and n_workers > 1
        and (workers is not None or len(seq) >= PARALLEL_THRESHOLD)
    ):
        executor = own_pool = ProcessPoolExecutor(n_workers)
    memo: dict[int, bytes] = {}
    try:
        pending: list[tuple[_Chunk, Future[_Answer] | None]] = []
        if executor is None:
            spans = _sizes(len(seq), fixed or DEFAULT_CHUNK, 1)
        else:
            # A pool's size when it tells (ours, the stdlib pools); else the machine's.
            pool_size = getattr(executor, "_max_workers", None)
            spans = _sizes(len(seq), fixed, pool_size if type(pool_size) is int else n_workers)
        for start, stop in spans:
            chunk = _chunk(seq[start:stop], memo, default_purpose)
            # Submitted as soon as built: the workers start while later chunks are cut.
            pending.append(
                (
                    chunk,
                    None if executor is None else executor.submit(_verify_chunk, chunk, use_native),
                )
            )
        results: list[VerificationResult] = []
        extend = results.extend
        verdicts: dict[tuple[bytes, str, str], _Verdict | None] = {}
        for chunk, future in pending:
            certs, plan_keys, pis, _sigs, _datas, _digests = chunk
            metas, fails = _verify_chunk(chunk, use_native) if future is None else future.result()
            plan_verdicts: list[_Verdict | None] = []
            for ci, h, p in plan_keys:
                vkey = (certs[ci], h, p)
                if vkey not in verdicts:
                    verdicts[vkey] = _verdict(certs[ci], h, p, pol)
                plan_verdicts.append(verdicts[vkey])
            # Results are immutable: every item whose signature matched shares its plan's.
            part: list[VerificationResult | None] = [
                v.ok if v is not None else None for v in plan_verdicts
            ]
            part = [part[pi] for pi in pis]
            for i, why in fails.items():
                v = plan_verdicts[pis[i]]
                meta = metas[plan_keys[pis[i]][0]]
                part[i] = _combine(why, v) if v is not None else _unusable(why, meta)
            for i, r in enumerate(part):
                if r is None:  # cannot happen: an unusable certificate always fails
                    part[i] = _unusable(
                        Reason(Code.CERT_MALFORMED, "unusable certificate"),
                        metas[plan_keys[pis[i]][0]],
                    )
            extend(part)  # type: ignore[arg-type]
            if progress is not None:
                progress(len(pis))
        return results
    finally:
        if own_pool is not None:
            own_pool.shutdown()
