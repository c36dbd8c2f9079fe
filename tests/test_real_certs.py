"""A real user-authentication certificate issued by J-LIS (vectors/real-certs/README.md).

It must chain to the built-in J-LIS roots inside its validity (to the 2015 generation, chosen
by key: all generations share one DN), be classified as an authentication certificate, carry
no basic 4 information, and be INVALID before and after its validity, as a document signer,
and under roots of the other generations or purpose. The same through the CLI.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from jpki.cert import CertKind, JpkiCertificate
from jpki.cli import main
from jpki.trust import jlis_roots
from jpki.verify import Policy, Purpose, Status, validate_chain

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "real-certs"
VECTOR = VECTORS / "jpki-auth-2019-tsukuba.der"
#: Published with the bytes by the source (its SHA-256 test): the file is what it published.
PUBLISHED_SHA256 = "449ef3f93be0c5425330af2b41c63769190aa75a713223d96839f6537104007e"
INSIDE = datetime(2022, 1, 1, tzinfo=UTC)
NOT_BEFORE = datetime(2019, 7, 25, 15, 28, 6, tzinfo=UTC)
NOT_AFTER = datetime(2024, 5, 2, 14, 59, 59, tzinfo=UTC)


@pytest.fixture(scope="module")
def cert() -> JpkiCertificate:
    return JpkiCertificate.load(VECTOR.read_bytes())


def _root(serial_hex: str) -> JpkiCertificate:
    return next(r for r in jlis_roots("auth") if r.serial_hex.lstrip("0") == serial_hex)


def test_the_vector_is_the_published_certificate() -> None:
    assert hashlib.sha256(VECTOR.read_bytes()).hexdigest() == PUBLISHED_SHA256


def test_classified_as_a_production_authentication_certificate(cert: JpkiCertificate) -> None:
    assert cert.kind is CertKind.AUTHENTICATION and not cert.is_test
    assert cert.subject_text == "CN=840444E37PAFHN08220003A,C=JP"
    assert cert.policies == ("1.2.392.200149.8.5.1.3.30",)
    assert cert.key_usage == ("digitalSignature",)
    assert cert.basic_info is None  # the authentication certificate carries no personal data
    assert (cert.not_before, cert.not_after) == (NOT_BEFORE, NOT_AFTER)


@pytest.mark.parametrize("purpose", ["auth", "any"])
def test_chains_to_the_builtin_roots_inside_its_validity(
    cert: JpkiCertificate, purpose: str
) -> None:
    for at in (NOT_BEFORE, INSIDE, NOT_AFTER):
        result = validate_chain(cert, Policy(anchors=jlis_roots(purpose), at=at))
        assert result.status is Status.VALID, (at, result.reasons)
        assert result.chain[-1] == cert.subject_text
    # The 2015 generation signed it: the reason names that root's key, not the shared DN only.
    key_id = _root("1").subject_key_id
    assert key_id is not None
    result = validate_chain(cert, Policy(anchors=jlis_roots("auth"), at=INSIDE))
    assert any(key_id.hex() in r for r in result.reasons), result.reasons


def test_a_same_named_root_of_another_generation_is_not_its_issuer(cert: JpkiCertificate) -> None:
    others = [_root("133C349"), _root("6D18006")]  # 2019, 2023: the same DN, other keys
    assert {r.subject_text for r in others} == {cert.issuer_text}
    result = validate_chain(cert, Policy(anchors=others, at=INSIDE))
    assert result.status is Status.INVALID, result.reasons


def test_the_signing_roots_do_not_anchor_it(cert: JpkiCertificate) -> None:
    result = validate_chain(cert, Policy(anchors=jlis_roots("sign"), at=INSIDE))
    assert result.status is Status.INVALID


@pytest.mark.parametrize(
    "at",
    [
        datetime(2019, 7, 25, 15, 28, 5, tzinfo=UTC),  # a second before notBefore
        datetime(2024, 5, 2, 15, 0, 0, tzinfo=UTC),  # a second after notAfter
        datetime(2026, 12, 2, tzinfo=UTC),
    ],
)
def test_invalid_outside_its_validity(cert: JpkiCertificate, at: datetime) -> None:
    result = validate_chain(cert, Policy(anchors=jlis_roots("auth"), at=at))
    assert result.status is Status.INVALID
    assert any("valid" in r or "expired" in r for r in result.reasons), result.reasons


def test_an_authentication_certificate_never_signs_documents(cert: JpkiCertificate) -> None:
    policy = Policy(anchors=jlis_roots("auth"), at=INSIDE, purpose=Purpose.SIGN)
    result = validate_chain(cert, policy)
    assert result.status is Status.INVALID
    assert any("user-authentication certificate" in r for r in result.reasons), result.reasons


def test_no_anchors_is_indeterminate(cert: JpkiCertificate) -> None:
    assert validate_chain(cert, Policy(at=INSIDE)).status is Status.INDETERMINATE


# --- CLI ------------------------------------------------------------------------------------


def test_cli_cert_show(cert: JpkiCertificate) -> None:
    result = CliRunner().invoke(main, ["cert", "show", str(VECTOR), "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["kind"] == "authentication" and d["is_test"] is False and d["basic_info"] is None
    assert d["fingerprint_sha256"] == PUBLISHED_SHA256
    assert d["serial_hex"] == "012D57CA"
    assert d["ocsp_urls"] == ["http://ocspauthnorm.jpki.go.jp"]
    dp = d["crl_distribution_points"][0]
    assert dp["type"] == "directoryName" and dp["value"].startswith("CN=Tsukuba-shi CRLDP,")
    assert d["authority_key_id"] == _root("1").subject_key_id.hex()


@pytest.mark.parametrize(
    ("at", "code", "status"),
    [
        ("2022-01-01T00:00:00Z", 0, "valid"),
        ("2024-05-02T15:00:00Z", 1, "invalid"),
        ("2019-07-25T15:28:05Z", 1, "invalid"),
    ],
)
def test_cli_verify_chain_with_builtin_trust(at: str, code: int, status: str) -> None:
    args = ["verify", "chain", str(VECTOR), "--trust", "jlis", "--at", at, "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout)["status"] == status


def test_cli_the_leaf_given_as_its_own_trust_is_no_anchor() -> None:
    # `jpki card certs --out DIR` then `--trust DIR`: the leaf is never its own anchor.
    args = ["verify", "chain", str(VECTOR), "--trust", str(VECTOR), "--at", "2022-01-01"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 3, result.output
    assert "INDETERMINATE" in result.stdout and "is not a CA certificate" in result.stdout
