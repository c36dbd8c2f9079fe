"""`jpki verify ...`: exit codes 0/1/2/3, JSON with status and reasons, manifests, revocation."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki.cli import main
from jpki.cli.verify import decode_blob, parse_time, read_manifest
from jpki.errors import JpkiError
from jpki.testing.pki import TestPki, sample_person
from jpki.verify import Status

DOC = b"order #42\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, test_pki: TestPki) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    signing = test_pki.issue_signing(sample_person(0))
    auth = test_pki.issue_auth()
    out = {"dir": d}

    def put(name: str, data: bytes) -> None:
        (d / name).write_bytes(data)
        out[name] = d / name

    put("sign.pem", signing.pem)
    put("auth.der", auth.der)
    put("doc.txt", DOC)
    put("doc.sig", signing.key.sign(DOC, padding.PKCS1v15(), hashes.SHA256()))
    put("doc.sig.b64", base64.b64encode((d / "doc.sig").read_bytes()) + b"\n")
    put("auth.sig", auth.key.sign(DOC, padding.PKCS1v15(), hashes.SHA256()))
    put("bad.sig", bytes(256))
    put("ca.pem", test_pki.sign_ca.pem)
    put(
        "sign.key",
        signing.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    anchors = d / "anchors"
    anchors.mkdir()
    (anchors / "sign.pem").write_bytes(test_pki.sign_ca.pem)
    (anchors / "auth.pem").write_bytes(test_pki.auth_ca.pem)
    out["anchors"] = anchors
    return out


def run(*args: str | Path) -> tuple[Result, dict[str, object] | None]:
    res = CliRunner().invoke(main, ["verify", *map(str, args)])
    data = None
    if "--json" in args and res.exit_code in (0, 1, 3):
        data = json.loads(res.output)
    return res, data


def test_signature_valid_and_invalid(files: dict[str, Path]) -> None:
    f = files
    trust = ("--trust", f["anchors"], "--at", "2026-06-01Z")
    base = ("signature", "--cert", f["sign.pem"], "--data", f["doc.txt"])
    res, data = run(*base, "--sig", f["doc.sig"], *trust, "--json")
    assert res.exit_code == 0, res.output
    assert data is not None and data["status"] == "valid" and data["reasons"]
    codes = data["reason_codes"]
    assert isinstance(codes, list) and len(codes) == len(data["reasons"])  # type: ignore[arg-type]
    assert codes[0] == "signature.ok" and "chain.ok" in codes
    assert data["basic_info"]["name"] == sample_person(0).name  # type: ignore[index]
    digest = ("--digest", hashlib.sha256(DOC).hexdigest())
    res, _ = run("signature", "--cert", f["sign.pem"], *digest, "--sig", f["doc.sig.b64"], *trust)
    assert res.exit_code == 0 and res.output.startswith("VALID")
    res, data = run(*base, "--sig", f["bad.sig"], *trust, "--json")
    assert res.exit_code == 1 and data is not None and data["status"] == "invalid"
    # Data and digest together: both must match.
    res, _ = run(*base, *digest, "--sig", f["doc.sig"], *trust)
    assert res.exit_code == 0, res.output
    res, _ = run(*base, "--digest", "00" * 32, "--sig", f["doc.sig"], *trust)
    assert res.exit_code == 2 and "not the sha256 digest" in res.output
    # Without --trust the chain is not validated: at best indeterminate, never exit 0.
    res, data = run(*base, "--sig", f["doc.sig"], "--json")
    assert res.exit_code == 3 and data is not None and data["status"] == "indeterminate"
    assert "chain.not_validated" in data["reason_codes"]  # type: ignore[operator]


def test_forged_self_signed_certificate_is_never_valid(tmp_path: Path) -> None:
    from forged import AUTH_POLICY, SIGN_POLICY, forged

    for policy, purpose in ((AUTH_POLICY, "login"), (SIGN_POLICY, "sign")):
        key, cert = forged(policy, non_repudiation=purpose == "sign")
        (tmp_path / "f.der").write_bytes(cert.der)
        (tmp_path / "f.sig").write_bytes(key.sign(DOC, padding.PKCS1v15(), hashes.SHA256()))
        (tmp_path / "doc").write_bytes(DOC)
        base = ("signature", "--cert", tmp_path / "f.der", "--data", tmp_path / "doc")
        args = (*base, "--sig", tmp_path / "f.sig", "--purpose", purpose, "--json")
        res, data = run(*args)
        assert res.exit_code == 3, res.output  # no trust: indeterminate
        res, data = run(*args, "--trust", "jlis")
        assert res.exit_code == 1, res.output
        assert data is not None and "chain.untrusted" in data["reason_codes"]  # type: ignore[operator]
        # Trusting the forged certificate itself: a leaf is never an anchor.
        res, data = run(*args, "--trust", tmp_path / "f.der")
        assert res.exit_code == 3, res.output
        assert data is not None and "anchor.refused" in data["reason_codes"]  # type: ignore[operator]


def test_signature_purpose(files: dict[str, Path]) -> None:
    f = files
    base: list[str | Path] = [
        "signature",
        "--cert",
        f["auth.der"],
        "--data",
        f["doc.txt"],
        "--sig",
        f["auth.sig"],
        "--trust",
        f["anchors"],
    ]
    res, _ = run(*base)
    assert res.exit_code == 1 and "signing certificate" in res.output
    res, _ = run(*base, "--purpose", "login")
    assert res.exit_code == 0
    res, data = run(*base, "--purpose", "any", "--json")
    assert res.exit_code == 0 and data is not None
    assert any("overridden" in str(r) for r in data["reasons"])  # type: ignore[attr-defined]


def test_usage_errors_exit_2(files: dict[str, Path]) -> None:
    f = files
    res, _ = run("signature", "--cert", f["sign.pem"], "--sig", f["doc.sig"])
    assert res.exit_code == 2 and "give --data" in res.output
    res, _ = run("signature", "--cert", f["doc.txt"], "--data", f["doc.txt"], "--sig", f["doc.sig"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res, _ = run("chain", f["sign.pem"], "--trust", f["ca.pem"], "--at", "2026-06-01T00:00:00")
    assert res.exit_code == 2 and "timezone" in res.output
    res, _ = run("cms", f["doc.txt"])
    assert res.exit_code == 2 and "CMS" in res.output
    res, _ = run("chain", f["sign.pem"], "--trust", f["dir"] / "nope.pem")
    assert res.exit_code == 2


def test_chain(files: dict[str, Path], test_pki_2015: TestPki, tmp_path: Path) -> None:
    f = files
    res, data = run(
        "chain", f["sign.pem"], "--trust", f["anchors"], "--at", "2026-06-01Z", "--json"
    )
    assert res.exit_code == 0, res.output
    assert data is not None and len(data["chain"]) == 2  # type: ignore[arg-type]
    res, _ = run("chain", f["sign.pem"], "--trust", f["ca.pem"], "--at", "2045-01-01")
    assert res.exit_code == 1 and "expired" in res.output
    old = tmp_path / "old.pem"
    old.write_bytes(test_pki_2015.sign_ca.pem)
    res, _ = run("chain", f["sign.pem"], "--trust", old)
    assert res.exit_code == 1 and "does not chain" in res.output


def test_chain_purpose_follows_the_certificate_kind(files: dict[str, Path]) -> None:
    f = files
    res, data = run("chain", f["auth.der"], "--trust", f["anchors"], "--json")
    assert res.exit_code == 0, res.output
    assert data is not None and data["certificate_kind"] == "authentication"
    # An explicit purpose still wins: an auth certificate cannot sign documents.
    res, _ = run("chain", f["auth.der"], "--trust", f["anchors"], "--purpose", "sign")
    assert res.exit_code == 1 and "signing certificate" in res.output


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_cms(files: dict[str, Path]) -> None:
    f = files
    sig = f["dir"] / "doc.p7s"
    subprocess.run(
        [
            "openssl",
            "cms",
            "-sign",
            "-binary",
            "-in",
            f["doc.txt"],
            "-signer",
            f["sign.pem"],
            "-inkey",
            f["sign.key"],
            "-outform",
            "PEM",
            "-out",
            sig,
        ],
        check=True,
        capture_output=True,
    )
    res, _ = run("cms", sig)
    assert res.exit_code == 3 and "content must be supplied" in res.output
    res, data = run("cms", sig, "--content", f["doc.txt"], "--trust", f["anchors"], "--json")
    assert res.exit_code == 0, res.output
    assert data is not None and data["signing_time"]
    res, _ = run("cms", sig, "--content", f["sign.pem"])
    assert res.exit_code == 1 and "messageDigest" in res.output


def test_batch_manifest(files: dict[str, Path]) -> None:
    f = files
    sig = f["doc.sig"].read_bytes()
    lines = [
        {"cert": "sign.pem", "sig": "doc.sig", "data": "doc.txt"},
        {
            "cert": "sign.pem",
            "sig_b64": base64.b64encode(sig).decode(),
            "digest": hashlib.sha256(DOC).hexdigest(),
        },
        {"cert": "auth.der", "sig": "auth.sig", "data": "doc.txt", "purpose": "login"},
        {"cert": "sign.pem", "sig": "bad.sig", "data_b64": base64.b64encode(DOC).decode()},
    ]
    manifest = f["dir"] / "m.jsonl"
    manifest.write_text("# comment\n" + "\n".join(json.dumps(x) for x in lines) + "\n")
    trust = ("--trust", f["anchors"], "--at", "2026-06-01Z")
    res, data = run("batch", manifest, *trust, "--json")
    assert res.exit_code == 1, res.output
    assert data is not None and data["count"] == 4 and data["valid"] == 3
    assert [r["status"] for r in data["results"]] == ["valid"] * 3 + ["invalid"]  # type: ignore[attr-defined]
    manifest.write_text("\n".join(json.dumps(x) for x in lines[:3]))
    res, _ = run("batch", manifest, "--workers", "2", *trust)
    assert res.exit_code == 0 and res.output.startswith("VALID: 3 signatures")
    # Without --trust: every item says its chain was not validated; the batch exits 3.
    res, data = run("batch", manifest, "--json")
    assert res.exit_code == 3 and data is not None and data["indeterminate"] == 3
    for r in data["results"]:  # type: ignore[attr-defined]
        assert "chain.not_validated" in r["reason_codes"]
    # A document the signature does not cover, with the digest of the one it does: refused.
    other = f["dir"] / "other.txt"
    other.write_bytes(b"another document")
    both = {"cert": "sign.pem", "sig": "doc.sig", "data": "other.txt"}
    manifest.write_text(json.dumps({**both, "digest": hashlib.sha256(DOC).hexdigest()}))
    res, data = run("batch", manifest, *trust, "--json")
    assert res.exit_code == 1 and data is not None
    assert data["results"][0]["reason_codes"][0] == "input.data_digest_mismatch"  # type: ignore[index]
    manifest.write_text('{"cert": "sign.pem"}\n')
    res, _ = run("batch", manifest)
    assert res.exit_code == 2 and "line 1" in res.output
    manifest.write_text("not json\n")
    assert run("batch", manifest)[0].exit_code == 2


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"hash": "md5"}, "unsupported hash"),
        ({"purpose": "nope"}, "unknown purpose"),
        ({"cert": "missing.pem"}, "cannot read"),
        ({"digest": "xyz", "data": None}, "digest must be hex"),
        ({"sig": 5}, "must be a file path"),
    ],
)
def test_batch_manifest_errors_name_the_line(
    files: dict[str, Path], bad: dict[str, object], message: str
) -> None:
    good = {"cert": "sign.pem", "sig": "doc.sig", "data": "doc.txt"}
    broken = {k: v for k, v in {**good, **bad}.items() if v is not None}
    manifest = files["dir"] / "bad.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in (good, good, broken, good)) + "\n")
    res, _ = run("batch", manifest, "--json")
    assert res.exit_code == 2, res.output
    assert "manifest line 3" in res.output and message in res.output
    assert "Traceback" not in res.output


def test_batch_empty_manifest_is_not_valid(files: dict[str, Path]) -> None:
    manifest = files["dir"] / "empty.jsonl"
    manifest.write_text("# nothing to check\n\n")
    res, _ = run("batch", manifest, "--json")
    assert res.exit_code == 2, res.output
    assert "lists no signatures" in res.output and "Traceback" not in res.output


def test_batch_bad_certificate_is_an_invalid_item(files: dict[str, Path]) -> None:
    # A certificate file that does not parse spoils its own item, not the batch.
    (files["dir"] / "garbage.pem").write_bytes(b"not a certificate")
    good = {"cert": "sign.pem", "sig": "doc.sig", "data": "doc.txt"}
    manifest = files["dir"] / "garbage.jsonl"
    manifest.write_text(
        "\n".join(json.dumps(x) for x in (good, {**good, "cert": "garbage.pem"}, good))
    )
    res, data = run("batch", manifest, "--trust", files["anchors"], "--json")
    assert res.exit_code == 1, res.output
    assert data is not None
    results = data["results"]
    assert isinstance(results, list)
    assert [r["status"] for r in results] == ["valid", "invalid", "valid"]
    assert "unusable certificate" in results[1]["reasons"][0]


def test_revocation_options(files: dict[str, Path], test_pki: TestPki, tmp_path: Path) -> None:
    pytest.importorskip("jpki.revocation.policy")
    f = files
    leaf = x509.load_pem_x509_certificate(f["sign.pem"].read_bytes())
    person = sample_person(0)
    at = datetime(2026, 6, 1, tzinfo=UTC)
    dp = test_pki.crl_dp_name(person)
    good = tmp_path / "good.crl"
    good.write_bytes(test_pki.make_crl("sign", (), this_update=at, number=1, idp_name=dp))
    bad = tmp_path / "revoked.crl"
    revoked = [(leaf.serial_number, x509.ReasonFlags.affiliation_changed, at)]
    bad.write_bytes(test_pki.make_crl("sign", revoked, this_update=at, number=2, idp_name=dp))
    common: list[str | Path] = [
        "chain",
        f["sign.pem"],
        "--trust",
        f["anchors"],
        "--at",
        "2026-06-01T12:00Z",
    ]
    res, _ = run(*common, "--crl", good)
    assert res.exit_code == 0, res.output
    res, _ = run(*common, "--crl", bad)
    assert res.exit_code == 1 and "REVOKED" in res.output
    # A stale CRL decides nothing: indeterminate (hard-fail), accepted with --soft-fail.
    stale: list[str | Path] = [
        "chain",
        f["sign.pem"],
        "--trust",
        f["anchors"],
        "--at",
        "2026-06-20Z",
    ]
    res, _ = run(*stale, "--crl", good)
    assert res.exit_code == 3 and "stale" in res.output
    res, _ = run(*stale, "--crl", good, "--soft-fail")
    assert res.exit_code == 0, res.output
    res, _ = run(*common, "--soft-fail")
    assert res.exit_code == 2  # soft-fail without a source is a usage error


# --- property tests for the CLI's small parsers -------------------------------------------------


@given(st.text(max_size=40))
@settings(max_examples=300)
def test_parse_time_total(text: str) -> None:
    try:
        t = parse_time(text)
    except JpkiError:
        return
    assert t.tzinfo is not None and t.utcoffset() is not None


@given(st.binary(max_size=600))
@settings(max_examples=200)
def test_decode_blob_round_trips(blob: bytes) -> None:
    b64 = base64.b64encode(blob)
    # Hex is tried first: base64 text made only of hex digits (e.g. "AAAA") is ambiguous.
    if blob and not all(c in b"0123456789abcdefABCDEF" for c in b64):
        assert decode_blob(b64) == blob
    assert decode_blob(blob.hex().encode()) == blob
    out = decode_blob(blob)
    assert isinstance(out, bytes)


@given(st.lists(st.text(max_size=60), max_size=5))
@settings(max_examples=150, deadline=None)
def test_read_manifest_garbage(lines: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.jsonl"
        path.write_text("\n".join(lines), encoding="utf-8")
        try:
            items = read_manifest(str(path))
        except JpkiError:
            return
        assert len(items) <= len(lines)


async def _in_event_loop(cert: Path, ca: Path) -> Status:
    from jpki.verify import Policy, load_trust_anchors, validate_chain
    from jpki.verify.path import load_certificates

    leaf = load_certificates(cert.read_bytes())[0]
    policy = Policy(anchors=load_trust_anchors(ca), at=datetime(2026, 6, 1, tzinfo=UTC))
    r = validate_chain(leaf, policy)
    return r.status


def test_validate_chain_inside_a_running_event_loop(files: dict[str, Path]) -> None:
    import asyncio

    assert asyncio.run(_in_event_loop(files["sign.pem"], files["ca.pem"])) is Status.VALID


@pytest.fixture(scope="module")
def attached_cms(files: dict[str, Path]) -> bytes:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    out = files["dir"] / "attached.p7s"
    subprocess.run(
        [
            *("openssl", "cms", "-sign", "-nodetach", "-binary", "-in", str(files["doc.txt"])),
            *("-signer", str(files["sign.pem"]), "-inkey", str(files["sign.key"])),
            *("-outform", "DER", "-out", str(out)),
        ],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


@given(st.data())
@settings(max_examples=120, deadline=None)
def test_cli_mutated_cms_exit_2_never_a_traceback(attached_cms: bytes, data: st.DataObject) -> None:
    import tempfile

    blob = bytearray(attached_cms)
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    blob = blob[: data.draw(st.integers(0, len(blob)))]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.p7s"
        path.write_bytes(bytes(blob))
        res = CliRunner().invoke(main, ["verify", "cms", str(path), "--at", "2026-06-01Z"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    # (0 is possible: a flip inside the embedded certificate's own signature is only caught
    # with --trust.)
    assert res.exit_code in (0, 1, 2, 3), res.output
    if res.exit_code == 2:
        assert res.output.strip()  # one clear line saying what is wrong


def test_card_certs_dir_as_trust_never_trusts_the_leaf(sim_profile: Path, tmp_path: Path) -> None:
    """`jpki card certs --out DIR` then `--trust DIR`: the card's own certificate is in DIR,
    but only the CA certificates there are anchors, so the leaf's validity and revocation are
    still checked (an expired or revoked leaf was VALID when DIR was trusted whole)."""
    from jpki.cert import JpkiCertificate

    out = tmp_path / "certs"
    got = CliRunner().invoke(main, ["card", "certs", "--sim", str(sim_profile), "--out", str(out)])
    assert got.exit_code == 0, got.output
    leaf = JpkiCertificate.load((out / "auth.der").read_bytes())
    inside = leaf.not_before + (leaf.not_after - leaf.not_before) / 2
    at = inside.isoformat()
    res, data = run("chain", out / "auth.der", "--trust", out, "--at", at, "--json")
    assert res.exit_code == 0, res.output
    assert data is not None and "anchor.refused" in data["reason_codes"]  # type: ignore[operator]
    late = (leaf.not_after.replace(microsecond=0) + (leaf.not_after - leaf.not_before)).isoformat()
    res, data = run("chain", out / "auth.der", "--trust", out, "--at", late, "--json")
    assert res.exit_code == 1, res.output
    assert data is not None and "certificate.expired" in data["reason_codes"]  # type: ignore[operator]
    # Revoked: a CRL from the card's CA (the default test PKI's) listing the card's certificate.
    pki = TestPki()
    assert pki.auth_ca.der == (out / "auth-ca.der").read_bytes()
    crl = pki.make_crl(
        "auth",
        [(leaf.serial, x509.ReasonFlags.key_compromise, inside - timedelta(days=1))],
        this_update=inside - timedelta(hours=1),
    )
    (tmp_path / "auth.crl").write_bytes(crl)
    res, data = run(
        "chain", out / "auth.der", "--trust", out, "--at", at, "--crl", tmp_path / "auth.crl",
        "--json",
    )  # fmt: skip
    assert res.exit_code == 1, res.output
    assert data is not None and "revocation.revoked" in data["reason_codes"]  # type: ignore[operator]


def test_out_of_range_time_is_a_usage_error(files: dict[str, Path]) -> None:
    for at in ("9999-12-31T23:59:59Z", "9999-12-31", "0001-01-01T00:00:00+09:00"):
        res, _ = run("chain", files["sign.pem"], "--trust", files["anchors"], "--at", at)
        assert res.exit_code == 2, (at, res.output)
        assert "out of range" in res.output and "Traceback" not in res.output


def test_trust_jlis_combines_with_files(files: dict[str, Path]) -> None:
    base = ("chain", files["sign.pem"], "--at", "2026-06-01Z", "--json")
    res, data = run(*base, "--trust", "jlis")
    assert res.exit_code == 1 and data is not None  # a test certificate: not under J-LIS
    assert "chain.untrusted" in data["reason_codes"]  # type: ignore[operator]
    res, data = run(*base, "--trust", "jlis", "--trust", files["anchors"])
    assert res.exit_code == 0, res.output
