"""`jpki verify`: signatures, CMS, certificate chains and batches (docs/verify.md).

Exit codes: 0 valid, 1 invalid, 2 usage error or malformed input, 3 indeterminate.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click

from jpki._files import (
    MAX_CERT_FILE,
    MAX_INPUT_FILE,
    MAX_MANIFEST_FILE,
    InputFileError,
    read_regular_file,
)
from jpki.cert import JpkiCertificate
from jpki.cli import _config
from jpki.cli._common import Exit, emit, handle_errors, parse_time, read_input_file
from jpki.cli.revocation import load_crl_file
from jpki.cli.verify_pdf import pdf_cmd
from jpki.digestinfo import HashAlgorithm, hash_algorithm
from jpki.errors import JpkiError, UsageError
from jpki.policy import (
    DEFAULT_ALGORITHMS,
    LEGACY_ALGORITHMS,
    Policy,
    Purpose,
    RevocationCheck,
    purpose_of,
    revocation_checker,
)
from jpki.verify.batch import BatchItem, verify_batch
from jpki.verify.cms import verify_cms
from jpki.verify.path import load_certificates, load_trust_anchors, validate_chain
from jpki.verify.result import Code, Status, VerificationResult, worst
from jpki.verify.signature import verify_signature

_EXIT = {
    Status.VALID: Exit.OK,
    Status.INVALID: Exit.INVALID,
    Status.INDETERMINATE: Exit.INDETERMINATE,
}
#: --trust defaults to JPKI_TRUST or the configuration file's ``trust`` (docs/cli.md).
_TRUST = _config.default("trust")
_PURPOSES = click.Choice([p.value for p in Purpose])
_HASHES = click.Choice([h.value for h in HashAlgorithm], case_sensitive=False)


def decode_blob(raw: bytes) -> bytes:
    """Binary as is; a text file holding hex or base64 is decoded."""
    text = raw.strip()
    if not text or any((b < 0x20 and b not in b"\r\n\t") or b > 0x7E for b in text):
        return raw
    compact = b"".join(text.split())
    try:
        return binascii.unhexlify(compact)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return raw


def _finish(result: VerificationResult, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    data = result.to_dict()
    if extra:
        data.update(extra)
    emit(data, as_json, lambda: _text(result))
    sys.exit(int(_EXIT[result.status]))


def _text(result: VerificationResult) -> str:
    lines = [result.status.value.upper()]
    if result.subject:
        lines.append(f"  certificate: {result.subject} ({result.certificate_kind})")
    if result.signing_time:
        lines.append(f"  signing time (claimed): {result.signing_time.isoformat()}")
    if result.account_key:
        lines.append(f"  account key: {result.account_key}")
    lines += [f"  - {r}" for r in result.reasons]
    return "\n".join(lines)


#: ``--trust jlis``: the J-LIS roots built into the package (a file named so: ``./jlis``).
BUILTIN_TRUST = "jlis"


def _anchors(values: Sequence[str]) -> tuple[JpkiCertificate, ...]:
    """The certificates named by ``--trust`` values: ``jlis`` and/or files and directories."""
    out: list[JpkiCertificate] = []
    paths = [v for v in values if v != BUILTIN_TRUST]
    if BUILTIN_TRUST in values:
        from jpki.trust.jlis import jlis_roots

        out += jlis_roots("any")
    if paths:
        out += load_trust_anchors(*paths)
    return tuple(out)


def make_policy(
    *,
    trust: Sequence[str] = (),
    at: str | None = None,
    purpose: str | None = None,
    crl_files: Sequence[str] = (),
    ocsp_url: str | None = None,
    soft_fail: bool = False,
    legacy_algorithms: bool = False,
    policies: Sequence[str] = (),
    tsa_trust: Sequence[str] = (),
) -> Policy:
    """The one :class:`Policy` a ``jpki verify`` command applies, from its options."""
    revocation = _revocation(crl_files, ocsp_url, soft_fail)
    if revocation is not None and not trust:
        raise UsageError("revocation checking needs --trust (the issuer comes from the chain)")
    return Policy(
        anchors=_anchors(trust),
        purpose=purpose_of(purpose) if purpose is not None else None,
        at=parse_time(at),
        revocation=revocation,
        soft_fail=soft_fail,
        algorithms=LEGACY_ALGORITHMS if legacy_algorithms else DEFAULT_ALGORITHMS,
        required_policies=frozenset(policies) if policies else None,
        timestamp_anchors=_anchors(tsa_trust),
    )


def trust_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--trust CA`` (repeatable; default from JPKI_TRUST or the config file)."""
    return click.option(
        "--trust",
        "trust",
        multiple=True,
        default=_TRUST,
        metavar="CA",
        help="Trusted CA certificates: 'jlis' (the built-in J-LIS roots), a file or a "
        "directory; repeatable (default: JPKI_TRUST or the config file). Without it the "
        "answer is at best indeterminate.",
    )(fn)


def legacy_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--legacy-algorithms``: accept RSA below 2048 bits and SHA-1."""
    return click.option(
        "--legacy-algorithms",
        is_flag=True,
        help="Accept RSA below 2048 bits and SHA-1 (old signatures); reported in the reasons.",
    )(fn)


def _revocation(
    crl_files: Sequence[str], ocsp_url: str | None, soft_fail: bool
) -> RevocationCheck | None:
    if not crl_files and ocsp_url is None:
        if soft_fail:
            raise UsageError("--soft-fail needs a revocation source (--crl or --ocsp)")
        return None
    crls = [load_crl_file(f) for f in crl_files]
    return revocation_checker(crls=crls, ocsp_url=ocsp_url, soft_fail=soft_fail)


def revocation_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--crl FILE`` (repeatable), ``--ocsp URL`` and ``--soft-fail``."""
    fn = click.option(
        "--soft-fail",
        is_flag=True,
        help="Accept when revocation status cannot be found (default: indeterminate).",
    )(fn)
    fn = click.option("--ocsp", "ocsp_url", metavar="URL", help="OCSP responder to ask.")(fn)
    fn = click.option(
        "--crl",
        "crl_files",
        multiple=True,
        metavar="FILE",
        help="CRL (DER or PEM) to check revocation against; repeatable.",
    )(fn)
    return fn


def at_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--at TIME``: the validation time (parsed by ``make_policy``)."""
    return click.option(
        "--at", "at", metavar="TIME", help="Validation time (ISO 8601; default now)."
    )(fn)


@dataclass(frozen=True)
class PolicyOptions:
    """The policy options of one ``jpki verify`` command, as given (checked by ``policy``)."""

    trust: Sequence[str] = ()
    at: str | None = None
    crl_files: Sequence[str] = ()
    ocsp_url: str | None = None
    soft_fail: bool = False
    legacy_algorithms: bool = False
    policies: Sequence[str] = ()
    tsa_trust: Sequence[str] = ()

    def policy(self, purpose: str | None) -> Policy:
        """The :class:`Policy` these options and ``purpose`` make (see ``make_policy``)."""
        return make_policy(purpose=purpose, **vars(self))


_POLICY_OPTIONS = tuple(f.name for f in fields(PolicyOptions))


def gather_policy_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Hand the command the policy options it declares as one ``options: PolicyOptions``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in _POLICY_OPTIONS if name in kwargs}
        return fn(*args, options=PolicyOptions(**given), **kwargs)

    return wrapper


@click.group("verify")
def verify_group() -> None:
    """Verify signatures, CMS files, certificate chains and batches (relying party)."""


@verify_group.command("signature")
@click.option("--cert", "cert_file", required=True, metavar="FILE", help="Signer certificate.")
@click.option("--data", "data_file", metavar="FILE", help="The signed data ('-' for stdin).")
@click.option("--digest", "digest_hex", metavar="HEX", help="The signed digest, in hex.")
@click.option(
    "--sig", "sig_file", required=True, metavar="FILE", help="Signature (binary/hex/base64)."
)
@click.option("--hash", "hash_name", type=_HASHES, default="sha256", show_default=True)
@click.option("--purpose", type=_PURPOSES, default="sign", show_default=True,
              help="sign: signing certificate needed; login: authentication certificate; "
                   "any: override the key-usage policy (reported).")  # fmt: skip
@at_option
@trust_option
@revocation_options
@legacy_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
@gather_policy_options
def signature_cmd(
    cert_file: str,
    data_file: str | None,
    digest_hex: str | None,
    sig_file: str,
    hash_name: str,
    purpose: str,
    options: PolicyOptions,
    as_json: bool,
) -> None:
    """Verify an RSA PKCS#1 v1.5 signature over a file and/or a digest."""
    if data_file is None and digest_hex is None:
        raise UsageError("give --data FILE or --digest HEX (or both: then they must agree)")
    digest = None
    if digest_hex is not None:
        try:
            digest = bytes.fromhex(digest_hex.strip())
        except ValueError:
            raise UsageError("--digest must be hexadecimal") from None
    policy = options.policy(purpose)
    data = read_input_file(data_file) if data_file is not None else None
    certs = load_certificates(read_input_file(cert_file))
    result = verify_signature(
        certs[0],
        decode_blob(read_input_file(sig_file)),
        data=data,
        digest=digest,
        hash_alg=hash_name,
        policy=policy,
        intermediates=certs[1:],
    )
    _finish(result, as_json)


@verify_group.command("cms")
@click.argument("cms_file", metavar="FILE")
@click.option("--content", "content_file", metavar="FILE", help="Content of a detached signature.")
@click.option("--cert", "cert_files", multiple=True, metavar="FILE",
              help="Certificates not embedded (signer, intermediates); repeatable.")  # fmt: skip
@trust_option
@at_option
@click.option("--purpose", type=_PURPOSES, default="sign", show_default=True)
@click.option("--tsa-trust", "tsa_trust", multiple=True, metavar="CA",
              help="Trusted CA of timestamp authorities (signature timestamps); "
                   "repeatable. Without it a timestamp is reported, not proven.")  # fmt: skip
@revocation_options
@legacy_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
@gather_policy_options
def cms_cmd(
    cms_file: str,
    content_file: str | None,
    cert_files: tuple[str, ...],
    purpose: str,
    options: PolicyOptions,
    as_json: bool,
) -> None:
    """Verify a CMS SignedData file (PEM or DER, attached or detached)."""
    policy = options.policy(purpose)
    extra = [c for f in cert_files for c in load_certificates(read_input_file(f))]
    result = verify_cms(
        read_input_file(cms_file),
        policy,
        content=read_input_file(content_file) if content_file else None,
        certificates=extra,
    )
    _finish(result, as_json)


@verify_group.command("chain")
@click.argument("cert_file", metavar="CERT")
@click.option("--trust", "trust", multiple=True, required=True, default=_TRUST, metavar="CA",
              help="Trusted CA certificates: 'jlis' (the built-in J-LIS roots), a file or a "
                   "directory; repeatable.")  # fmt: skip
@click.option("--intermediate", "intermediates", multiple=True, metavar="FILE",
              help="Untrusted intermediate CA certificates; repeatable.")  # fmt: skip
@at_option
@click.option("--purpose", type=click.Choice(["auto", *(p.value for p in Purpose)]),
              default="auto", show_default=True,
              help="auto: login for authentication certificates, sign otherwise.")  # fmt: skip
@click.option("--policy", "policies", multiple=True, metavar="OID",
              help="Require one of these certificate policies; repeatable.")  # fmt: skip
@revocation_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
@gather_policy_options
def chain_cmd(
    cert_file: str,
    intermediates: tuple[str, ...],
    purpose: str,
    options: PolicyOptions,
    as_json: bool,
) -> None:
    """Validate a certificate up to trusted CA certificates (no system roots, ever)."""
    # auto: a chain check asks "is this certificate good for what it is for".
    policy = options.policy(None if purpose == "auto" else purpose)
    cert = load_certificates(read_input_file(cert_file))[0]
    inter = [c for f in intermediates for c in load_certificates(read_input_file(f))]
    _finish(validate_chain(cert, policy, intermediates=inter), as_json)


# --- batch ----------------------------------------------------------------------------------


def _field_bytes(
    entry: dict[str, Any], name: str, base: Path, cache: dict[Path, bytes], line: int
) -> bytes | None:
    """``name`` (a file path, relative to the manifest) or ``name_hex`` / ``name_b64``."""
    if name in entry:
        value = entry[name]
        if not isinstance(value, str) or not value:
            raise UsageError(f"manifest line {line}: {name!r} must be a file path")
        if "\x00" in value:  # the OS cannot name it; Path would raise a bare ValueError
            raise UsageError(f"manifest line {line}: {name!r} contains a NUL character")
        path = base / value
        if path not in cache:
            try:
                limit = MAX_INPUT_FILE if name == "data" else MAX_CERT_FILE
                cache[path] = read_regular_file(path, max_bytes=limit)
            except InputFileError as exc:
                raise UsageError(f"manifest line {line}: {exc}") from None
        return cache[path]
    for suffix, decode in (("_hex", bytes.fromhex), ("_b64", base64.b64decode)):
        key = name + suffix
        if key in entry:
            try:
                return bytes(decode(entry[key]))
            except (ValueError, TypeError, binascii.Error):
                raise UsageError(f"manifest line {line}: {key} is not valid") from None
    return None


def read_manifest(path: str) -> list[BatchItem]:
    """JSON Lines; see docs/verify.md for the fields."""
    raw = read_input_file(path, max_bytes=MAX_MANIFEST_FILE)
    base = Path(path).parent if path != "-" else Path.cwd()
    cache: dict[Path, bytes] = {}
    certs: dict[bytes, bytes] = {}
    items: list[BatchItem] = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 JSON Lines") from None
    # Lines end at "\n" only: str.splitlines would also split at U+2028 or \x1c inside a JSON
    # string, so the line numbers in errors would not be an editor's.
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"manifest line {n}: not JSON ({exc.msg})") from None
        except RecursionError:  # [[[[… nested deeper than the parser's stack
            raise UsageError(f"manifest line {n}: JSON nested too deeply") from None
        if not isinstance(entry, dict):
            raise UsageError(f"manifest line {n}: expected a JSON object")
        cert = _field_bytes(entry, "cert", base, cache, n)
        sig = _field_bytes(entry, "sig", base, cache, n)
        if cert is None or sig is None:
            raise UsageError(f"manifest line {n}: needs cert and sig")
        # Certificates as DER, converted once per distinct file content. One that does not
        # parse is that item's problem (an invalid result), not the whole manifest's.
        if cert not in certs:
            try:
                certs[cert] = load_certificates(cert)[0].der
            except JpkiError:
                certs[cert] = cert
        try:
            hash_alg = hash_algorithm(str(entry.get("hash", "sha256")))
            purpose = purpose_of(str(entry["purpose"])) if "purpose" in entry else None
        except UsageError as exc:
            raise UsageError(f"manifest line {n}: {exc}") from None
        data = _field_bytes(entry, "data", base, cache, n)
        digest = entry.get("digest")
        if digest is not None:
            try:
                digest = bytes.fromhex(digest)
            except (ValueError, TypeError):
                raise UsageError(f"manifest line {n}: digest must be hex") from None
        items.append(
            BatchItem(
                certs[cert],
                decode_blob(sig),
                data=data,
                digest=digest,
                hash_alg=hash_alg,
                purpose=purpose,
            )
        )
    return items


@verify_group.command("batch")
@click.argument("manifest", metavar="MANIFEST.jsonl")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Processes to use (default: all cores for large batches).")  # fmt: skip
@click.option("--executor", "executor_url", metavar="dask://HOST:PORT",
              help="Run on this Dask scheduler instead of local processes.")  # fmt: skip
@trust_option
@at_option
@revocation_options
@legacy_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
@gather_policy_options
def batch_cmd(
    manifest: str,
    workers: int | None,
    options: PolicyOptions,
    as_json: bool,
    executor_url: str | None = None,
) -> None:
    """Verify many signatures listed in a JSON Lines manifest (results in input order).

    Every item gets the same policy: with --trust each distinct certificate's chain is
    validated once; without, every item says the chain was not validated.
    """
    policy = options.policy(None)
    items = read_manifest(manifest)
    if not items:
        # Zero signatures checked is no evidence: never report that as "valid".
        raise UsageError(f"{manifest}: the manifest lists no signatures")
    with contextlib.ExitStack() as stack:
        executor = None
        if executor_url is not None:
            from jpki.verify.dask import dask_executor

            executor = stack.enter_context(dask_executor(executor_url))
        if sys.stdout.isatty() and not as_json and items:
            with click.progressbar(length=len(items), label="verifying") as bar:
                results = verify_batch(
                    items, executor, workers=workers, progress=bar.update, policy=policy
                )
        else:
            results = verify_batch(items, executor, workers=workers, policy=policy)
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    overall = worst(r.status for r in results)
    summary = (
        f"{len(results)} signatures: {counts[Status.VALID]} valid, "
        f"{counts[Status.INVALID]} invalid, {counts[Status.INDETERMINATE]} indeterminate"
    )
    data = {
        "status": overall.value,
        "reasons": [summary],
        "reason_codes": [Code.BATCH_SUMMARY.value],
        "count": len(results),
        "valid": counts[Status.VALID],
        "invalid": counts[Status.INVALID],
        "indeterminate": counts[Status.INDETERMINATE],
        "results": [{"index": i, **r.to_dict()} for i, r in enumerate(results)],
    }

    def text() -> str:
        lines = [f"{overall.value.upper()}: {summary}"]
        for i, r in enumerate(results):
            if r.status is not Status.VALID:
                lines.append(f"  #{i}: {r.status.value}: {'; '.join(r.reasons)}")
        return "\n".join(lines)

    emit(data, as_json, text)
    sys.exit(int(_EXIT[overall]))


verify_group.add_command(pdf_cmd)

commands: list[click.Command] = [verify_group]
