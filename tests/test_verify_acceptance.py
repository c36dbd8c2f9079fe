"""Issue 5 "done when": a flipped bit, a wrong key, a wrong certificate kind, an expired
certificate and an untrusted root each give invalid (indeterminate where undecidable) with
a reason a person understands; for signature, CMS and chain; via the library and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from jpki.cert import JpkiCertificate
from jpki.cli import main
from jpki.cli.verify import parse_time
from jpki.testing.pki import Issued, TestPki, sample_person
from jpki.verify import (
    Policy,
    Status,
    VerificationResult,
    load_trust_anchors,
    validate_chain,
    verify_cms,
    verify_signature,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

AT = "2026-06-01T00:00:00Z"
LATE = "2045-01-01T00:00:00Z"
DOC = "契約書 第1条\n".encode()


def _flip(blob: bytes, index: int) -> bytes:
    b = bytearray(blob)
    b[index] ^= 0x10
    return bytes(b)


def _key_pem(issued: Issued) -> bytes:
    return issued.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def d(
    tmp_path_factory: pytest.TempPathFactory,
    test_pki: TestPki,
    test_pki_2015: TestPki,
    jlis_roots_dir: Path,
) -> Path:
    d = tmp_path_factory.mktemp("acceptance")
    signing = test_pki.issue_signing(sample_person(0))
    people = {
        "sign": signing,
        "other": test_pki.issue_signing(sample_person(1)),
        "auth": test_pki.issue_auth(),
        # Same issuer and serial as "sign" (so a CMS signer id points at it), another key.
        "impostor": test_pki.issue_signing(
            sample_person(0), label="impostor", serial=signing.cert.serial_number
        ),
    }
    for name, issued in people.items():
        (d / f"{name}.pem").write_bytes(issued.pem)
        (d / f"{name}.key").write_bytes(_key_pem(issued))
    (d / "sign_flipped.der").write_bytes(_flip(signing.der, len(signing.der) - 20))
    (d / "doc").write_bytes(DOC)
    for name in ("sign", "auth"):
        sig = people[name].key.sign(DOC, padding.PKCS1v15(), hashes.SHA256())
        (d / f"{name}.sig").write_bytes(sig)
    (d / "sign_flipped.sig").write_bytes(_flip((d / "sign.sig").read_bytes(), 100))
    for dirname, pki in (("anchors", test_pki), ("old", test_pki_2015)):
        (d / dirname).mkdir()
        (d / dirname / "sign.pem").write_bytes(pki.sign_ca.pem)
        (d / dirname / "auth.pem").write_bytes(pki.auth_ca.pem)
    (d / "jlis").symlink_to(jlis_roots_dir)

    def cms(out: str, who: str, *opts: str) -> None:
        subprocess.run(
            [
                *("openssl", "cms", "-sign", "-binary", "-in", str(d / "doc"), "-outform", "DER"),
                *("-signer", str(d / f"{who}.pem"), "-inkey", str(d / f"{who}.key")),
                *("-out", str(d / out), *opts),
            ],
            check=True,
            capture_output=True,
        )

    cms("sign.p7s", "sign", "-nodetach")
    cms("auth.p7s", "auth", "-nodetach")
    cms("nocerts.p7s", "sign", "-nodetach", "-nocerts")
    cms("detached.p7s", "sign")
    blob = (d / "sign.p7s").read_bytes()
    (d / "sig_flipped.p7s").write_bytes(_flip(blob, len(blob) - 10))  # in the signature value
    (d / "content_flipped.p7s").write_bytes(_flip(blob, blob.index(DOC) + 2))
    return d


@dataclass(frozen=True)
class Case:
    id: str
    cli: tuple[str, ...]
    lib: Callable[[Path], VerificationResult]
    status: Status
    reason: str  # a phrase a person understands, expected among the reasons


def _cert(d: Path, name: str) -> JpkiCertificate:
    return JpkiCertificate.load((d / name).read_bytes())


def sig_case(
    id: str, status: Status, reason: str, *, cert: str = "sign.pem", sig: str = "sign.sig",
    trust: str = "anchors", at: str = AT,
) -> Case:  # fmt: skip
    def lib(d: Path) -> VerificationResult:
        policy = Policy(anchors=load_trust_anchors(d / trust), at=parse_time(at))
        return verify_signature(_cert(d, cert), (d / sig).read_bytes(), data=DOC, policy=policy)

    cli = ("signature", "--cert", cert, "--data", "doc", "--sig", sig, "--trust", trust,
           "--at", at)  # fmt: skip
    return Case(f"signature-{id}", cli, lib, status, reason)


def cms_case(
    id: str, status: Status, reason: str, *, file: str = "sign.p7s", trust: str = "anchors",
    at: str = AT, cert: str | None = None,
) -> Case:  # fmt: skip
    def lib(d: Path) -> VerificationResult:
        return verify_cms(
            (d / file).read_bytes(),
            Policy(anchors=load_trust_anchors(d / trust), at=parse_time(at)),
            certificates=[_cert(d, cert)] if cert else (),
        )

    cli = ("cms", file, "--trust", trust, "--at", at, *(("--cert", cert) if cert else ()))
    return Case(f"cms-{id}", cli, lib, status, reason)


def chain_case(
    id: str, status: Status, reason: str, *, cert: str = "sign.pem", trust: str = "anchors",
    at: str = AT, purpose: str = "sign",
) -> Case:  # fmt: skip
    def lib(d: Path) -> VerificationResult:
        policy = Policy(anchors=load_trust_anchors(d / trust), at=parse_time(at), purpose=purpose)
        return validate_chain(_cert(d, cert), policy)

    cli = ("chain", cert, "--trust", trust, "--at", at, "--purpose", purpose)
    return Case(f"chain-{id}", cli, lib, status, reason)


V, INV = Status.VALID, Status.INVALID
NOT_OURS = "does not chain to any of the"
CASES = [
    sig_case("ok", V, "chains to trusted CA"),
    sig_case(
        "flipped-bit", INV, "does not belong to this certificate's key", sig="sign_flipped.sig"
    ),
    sig_case("wrong-key", INV, "wrong key or certificate", cert="other.pem"),
    sig_case(
        "wrong-kind",
        INV,
        "document signatures need a signing certificate",
        cert="auth.pem",
        sig="auth.sig",
    ),
    sig_case("expired", INV, "expired", at=LATE),
    sig_case("untrusted-root", INV, NOT_OURS, trust="old"),
    sig_case("real-jlis-roots", INV, NOT_OURS, trust="jlis"),
    cms_case("ok", V, "chains to trusted CA"),
    cms_case("flipped-bit-signature", INV, "does not belong", file="sig_flipped.p7s"),
    cms_case(
        "flipped-bit-content",
        INV,
        "does not match the signed messageDigest",
        file="content_flipped.p7s",
    ),
    cms_case("wrong-key", INV, "does not belong", file="nocerts.p7s", cert="impostor.pem"),
    cms_case("wrong-kind", INV, "document signatures need a signing certificate", file="auth.p7s"),
    cms_case("expired", INV, "expired", at=LATE),
    cms_case("untrusted-root", INV, NOT_OURS, trust="old"),
    cms_case("real-jlis-roots", INV, NOT_OURS, trust="jlis"),
    cms_case(
        "signer-not-supplied",
        Status.INDETERMINATE,
        "neither embedded nor supplied",
        file="nocerts.p7s",
    ),
    chain_case("ok", V, "chains to trusted CA"),
    chain_case(
        "flipped-bit",
        INV,
        "signature of the end-entity certificate could not be verified",
        cert="sign_flipped.der",
    ),
    chain_case("wrong-key", INV, NOT_OURS, trust="old"),
    chain_case(
        "wrong-kind", INV, "document signatures need a signing certificate", cert="auth.pem"
    ),
    chain_case("ca-as-end-entity", INV, "not an end-user certificate", cert="anchors/sign.pem"),
    chain_case("expired", INV, "expired", at=LATE),
    chain_case("real-jlis-roots", INV, NOT_OURS, trust="jlis"),
]
EXIT = {Status.VALID: 0, Status.INVALID: 1, Status.INDETERMINATE: 3}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_library(d: Path, case: Case) -> None:
    r = case.lib(d)
    assert r.status is case.status, r.reasons
    assert case.reason in " ".join(r.reasons)
    assert all(isinstance(x, str) and x for x in r.reasons)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli(d: Path, case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(d)
    res = CliRunner().invoke(main, ["verify", *case.cli, "--json"])
    assert "Traceback" not in res.output
    assert res.exit_code == EXIT[case.status], res.output
    data: dict[str, Any] = json.loads(res.output)
    assert data["status"] == case.status.value
    assert case.reason in " ".join(data["reasons"])
    # Text output says the same, first line the verdict.
    text = CliRunner().invoke(main, ["verify", *case.cli])
    assert text.exit_code == res.exit_code
    assert text.output.splitlines()[0] == case.status.value.upper()


def test_signature_without_trust_says_chain_not_validated(
    d: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(d)
    res = CliRunner().invoke(main, ["verify", "signature", "--cert", "sign.pem", "--data", "doc",
                                    "--sig", "sign.sig", "--json"])  # fmt: skip
    assert res.exit_code == 3, res.output  # indeterminate: the chain decides who signed
    assert "chain NOT validated" in " ".join(json.loads(res.output)["reasons"])
