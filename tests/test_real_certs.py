"""Real user-authentication certificates issued by J-LIS (vectors/real-certs/README.md).

Each must chain to the built-in J-LIS roots inside its validity, to the generation that
signed it (chosen by key: all generations share one DN), be classified as an authentication
certificate, carry no basic 4 information, and be INVALID before and after its validity, as
a document signer, under the roots of the other generations or purpose, and INDETERMINATE
without anchors. The same through the CLI (`cert show`, `verify chain --trust jlis`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from click.testing import CliRunner
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors

from jpki.cert import CertKind, JpkiCertificate
from jpki.cli import main
from jpki.trust import jlis_roots
from jpki.verify import Policy, Purpose, Status, validate_chain
from jpki.verify.flat import CertificateCache, flat_chain

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "real-certs"
ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Real:
    """One vector and what its source published (or what J-LIS's roots say of it)."""

    file: str
    fingerprint: str  # SHA-256 of the DER
    serial_hex: str
    subject: str
    not_before: datetime
    not_after: datetime
    issuer_serial: str  # the serial of the built-in root whose key signed it
    crl_dp: str

    @property
    def inside(self) -> datetime:
        return self.not_before + (self.not_after - self.not_before) / 2


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


REAL = [
    Real(
        "jpki-auth-2019-tsukuba.der",
        "449ef3f93be0c5425330af2b41c63769190aa75a713223d96839f6537104007e",
        "012D57CA",
        "CN=840444E37PAFHN08220003A,C=JP",
        _utc(2019, 7, 25, 15, 28, 6),
        _utc(2024, 5, 2, 14, 59, 59),
        "1",  # 2015 generation
        "CN=Tsukuba-shi CRLDP,OU=Ibaraki-ken,",
    ),
    Real(
        "jpki-auth-2020-yokohama.pem",
        "9c3f7955586048189c96d9ea49846ef23ac952ad37fc5f875cd7bc562f23dcde",
        "018C453E",
        "CN=308014E45JEFIG14104003A,C=JP",
        _utc(2020, 5, 19, 17, 38, 55),
        _utc(2024, 12, 7, 14, 59, 59),
        "133C349",  # 2019 generation
        "CN=Yokohama-shi-Naka-ku CRLDP,OU=Kanagawa-ken,",
    ),
    Real(
        # The case of issue 12: issued in 2023, valid until 2027-12-07, signed by the 2019 key.
        "jpki-auth-2023-yokohama.pem",
        "24b0121c74f63f851aaa94f04066495b9b1c7eb97409d295b2731f6829028db0",
        "06BFC341",
        "CN=412594E75JACJM14104003A,C=JP",
        _utc(2023, 5, 19, 16, 37, 9),
        _utc(2027, 12, 7, 14, 59, 59),
        "133C349",
        "CN=Yokohama-shi-Naka-ku CRLDP,OU=Kanagawa-ken,",
    ),
]
IDS = [r.file for r in REAL]


def _load(real: Real) -> JpkiCertificate:
    return JpkiCertificate.load((VECTORS / real.file).read_bytes())


def _root(serial_hex: str) -> JpkiCertificate:
    return next(r for r in jlis_roots("auth") if r.serial_hex.lstrip("0") == serial_hex)


@pytest.mark.parametrize("real", REAL, ids=IDS)
def test_the_vector_is_the_published_certificate(real: Real) -> None:
    cert = _load(real)
    assert cert.fingerprint_sha256.hex() == real.fingerprint
    assert cert.serial_hex == real.serial_hex


@pytest.mark.parametrize("real", REAL, ids=IDS)
def test_classified_as_a_production_authentication_certificate(real: Real) -> None:
    cert = _load(real)
    assert cert.kind is CertKind.AUTHENTICATION and not cert.is_test
    assert cert.subject_text == real.subject
    assert cert.policies == ("1.2.392.200149.8.5.1.3.30",)
    assert cert.key_usage == ("digitalSignature",)
    assert cert.basic_info is None  # the authentication certificate carries no personal data
    assert (cert.not_before, cert.not_after) == (real.not_before, real.not_after)


@pytest.mark.parametrize("purpose", ["auth", "any"])
@pytest.mark.parametrize("real", REAL, ids=IDS)
def test_chains_to_the_builtin_roots_inside_its_validity(real: Real, purpose: str) -> None:
    cert = _load(real)
    roots = jlis_roots("auth") if purpose == "auth" else jlis_roots("any")
    for at in (real.not_before, real.inside, real.not_after):
        result = validate_chain(cert, Policy(anchors=roots, at=at))
        assert result.status is Status.VALID, (at, result.reasons)
        assert result.chain[-1] == cert.subject_text
    # The reason names the key of the generation that signed it, not only the shared DN.
    key_id = _root(real.issuer_serial).subject_key_id
    assert key_id is not None and cert.authority_key_id == key_id
    result = validate_chain(cert, Policy(anchors=roots, at=real.inside))
    assert any(key_id.hex() in r for r in result.reasons), result.reasons


@pytest.mark.parametrize("real", REAL, ids=IDS)
def test_same_named_roots_of_other_generations_are_not_its_issuer(real: Real) -> None:
    cert = _load(real)
    others = [r for r in jlis_roots("auth") if r.serial_hex.lstrip("0") != real.issuer_serial]
    assert len(others) == 2 and {r.subject_text for r in others} == {cert.issuer_text}
    result = validate_chain(cert, Policy(anchors=others, at=real.inside))
    assert result.status is Status.INVALID, result.reasons
    # Its own generation alone is enough.
    alone = Policy(anchors=[_root(real.issuer_serial)], at=real.inside)
    assert validate_chain(cert, alone).status is Status.VALID


@pytest.mark.parametrize("real", REAL, ids=IDS)
def test_the_signing_roots_do_not_anchor_it(real: Real) -> None:
    result = validate_chain(_load(real), Policy(anchors=jlis_roots("sign"), at=real.inside))
    assert result.status is Status.INVALID


@pytest.mark.parametrize("real", REAL, ids=IDS)
def test_invalid_outside_its_validity(real: Real) -> None:
    cert = _load(real)
    month = timedelta(days=30)
    for at in (
        real.not_before - ONE_SECOND,
        real.not_after + ONE_SECOND,
        real.not_before - month,
        real.not_after + month,
    ):
        result = validate_chain(cert, Policy(anchors=jlis_roots("auth"), at=at))
        assert result.status is Status.INVALID, at
        assert any("valid" in r or "expired" in r for r in result.reasons), result.reasons
        codes = [r.code for r in result.reasons]
        want = "certificate.not_yet_valid" if at < real.inside else "certificate.expired"
        assert codes.count(want) == 1, result.reasons  # said once, not echoed by the path


@pytest.mark.parametrize("real", REAL, ids=IDS)
def test_good_for_logins_never_for_document_signatures(real: Real) -> None:
    login = Policy(anchors=jlis_roots("auth"), at=real.inside, purpose=Purpose.LOGIN)
    assert validate_chain(_load(real), login).status is Status.VALID
    policy = Policy(anchors=jlis_roots("auth"), at=real.inside, purpose=Purpose.SIGN)
    result = validate_chain(_load(real), policy)
    assert result.status is Status.INVALID
    assert any("user-authentication certificate" in r for r in result.reasons), result.reasons


@pytest.mark.parametrize("real", REAL, ids=IDS)
def test_no_anchors_is_indeterminate(real: Real) -> None:
    assert validate_chain(_load(real), Policy(at=real.inside)).status is Status.INDETERMINATE


def _certvalidator_says_valid(
    cert: JpkiCertificate, anchors: list[JpkiCertificate], at: datetime, ku: frozenset[str]
) -> bool:
    ctx = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(a.der) for a in anchors],
        moment=at,
        allow_fetching=False,
        revocation_mode="none",
    )
    validator = CertificateValidator(asn1_x509.Certificate.load(cert.der), validation_context=ctx)
    try:
        asyncio.run(validator.async_validate_usage(set(ku)))  # type: ignore[no-untyped-call]
    except (cv_errors.PathError, cv_errors.ValidationError):
        return False
    return True


@pytest.mark.parametrize("real", REAL, ids=IDS)
def test_the_flat_path_and_certvalidator_agree_on_it(real: Real) -> None:
    # The native flat path decides real JPKI certificates, and as pyhanko-certvalidator does.
    cert = _load(real)
    own = [_root(real.issuer_serial)]
    others = [r for r in jlis_roots("auth") if r not in own]
    day = timedelta(days=1)
    decided = valid = 0
    for anchors in (list(jlis_roots("any")), own, others, list(jlis_roots("sign"))):
        for at in (real.not_before - day, real.inside, real.not_after + day):
            for ku in (frozenset({"digital_signature"}), frozenset({"non_repudiation"})):
                fast = flat_chain(cert, anchors, at=at, key_usage=ku, cache=CertificateCache())
                if fast is None:  # no anchor with its issuer's key: certvalidator decides
                    continue
                decided += 1
                valid += fast.valid
                want = _certvalidator_says_valid(cert, anchors, at, ku)
                assert fast.valid == want, (anchors, at, ku, fast.problem)
    # Every case with its issuer among the anchors is decided natively; valid only inside its
    # validity and for digitalSignature.
    assert (decided, valid) == (12, 2)


# --- CLI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("real", REAL, ids=IDS)
def test_cli_cert_show(real: Real) -> None:
    result = CliRunner().invoke(main, ["cert", "show", str(VECTORS / real.file), "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["kind"] == "authentication" and d["is_test"] is False and d["basic_info"] is None
    assert d["fingerprint_sha256"] == real.fingerprint
    assert d["serial_hex"] == real.serial_hex
    assert d["subject"] == real.subject
    assert d["ocsp_urls"] == ["http://ocspauthnorm.jpki.go.jp"]
    dp = d["crl_distribution_points"][0]
    assert dp["type"] == "directoryName" and dp["value"].startswith(real.crl_dp)
    key_id = _root(real.issuer_serial).subject_key_id
    assert key_id is not None and d["authority_key_id"] == key_id.hex()


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("real", REAL, ids=IDS)
def test_cli_verify_chain_with_builtin_trust(real: Real) -> None:
    for at, code, status in (
        (real.inside, 0, "valid"),
        (real.not_before - ONE_SECOND, 1, "invalid"),
        (real.not_after + ONE_SECOND, 1, "invalid"),
    ):
        args = ["verify", "chain", str(VECTORS / real.file), "--trust", "jlis"]
        result = CliRunner().invoke(main, [*args, "--at", _iso(at), "--json"])
        assert result.exit_code == code, (at, result.output)
        assert json.loads(result.stdout)["status"] == status


def test_cli_the_leaf_given_as_its_own_trust_is_no_anchor() -> None:
    # `jpki card certs --out DIR` then `--trust DIR`: the leaf is never its own anchor.
    leaf = str(VECTORS / REAL[-1].file)
    args = ["verify", "chain", leaf, "--trust", leaf, "--at", "2026-01-01T00:00:00Z"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 3, result.output
    assert "INDETERMINATE" in result.stdout and "is not a CA certificate" in result.stdout
