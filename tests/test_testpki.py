"""Tests for the deterministic test PKI (jpki.testing.pki)."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki.testing import pki as testpki
from jpki.testing.pki import (
    OTHERNAME_ORDER,
    SIGNING_POLICY_OID,
    TestPki,
    birth_date_code,
    my_number_check_digit,
    sample_person,
)

REAL_TODAY = datetime(2026, 11, 29, tzinfo=UTC)


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_oid(oid)


def _utf8(value: bytes) -> str:
    assert value[0] == 0x0C, "otherName value must be a UTF8String"
    # short or one-byte long form is all the test PKI produces for these values
    if value[1] < 0x80:
        return value[2:].decode()
    n = value[1] & 0x7F
    return value[2 + n :].decode()


# --- people --------------------------------------------------------------------------------


def test_my_number_check_digit_known_value() -> None:
    assert my_number_check_digit("12345678901") == 8


@pytest.mark.parametrize("bad", ["1234567890", "1234567890a", ""])
def test_my_number_check_digit_rejects_bad_input(bad: str) -> None:
    with pytest.raises(ValueError):
        my_number_check_digit(bad)


@settings(max_examples=100)
@given(st.integers(min_value=0, max_value=10_000))
def test_sample_people_are_consistent(index: int) -> None:
    p = sample_person(index)
    assert len(p.my_number) == 12 and p.my_number.isdigit()
    assert int(p.my_number[-1]) == my_number_check_digit(p.my_number[:11])
    assert len(p.name_substitutes) == len(p.name)
    assert len(p.address_substitutes) == len(p.address)
    assert set(p.name_substitutes + p.address_substitutes) <= {"0", "1"}
    assert p.sex in (1, 2, 3)
    assert sample_person(index) == p


def test_sample_person_with_substitutes_and_wide_name() -> None:
    p = sample_person(2)
    assert p.name[0] == "\U00020bb7"  # one code point outside the BMP, flagged
    assert p.name_substitutes == "10000"
    assert "1" in p.address_substitutes
    assert "\u3000" in sample_person(0).name
    with pytest.raises(ValueError):
        sample_person(-1)


@pytest.mark.parametrize(
    ("d", "code"),
    [
        (date(1912, 7, 29), "119120729"),
        (date(1912, 7, 30), "219120730"),
        (date(1926, 12, 24), "219261224"),
        (date(1926, 12, 25), "319261225"),
        (date(1989, 1, 7), "319890107"),
        (date(1989, 1, 8), "419890108"),
        (date(2019, 4, 30), "420190430"),
        (date(2019, 5, 1), "520190501"),
        (date(1800, 1, 1), "018000101"),
    ],
)
def test_birth_date_era_boundaries(d: date, code: str) -> None:
    assert birth_date_code(d) == code


@settings(max_examples=200)
@given(st.dates(min_value=date(1800, 1, 1)), st.dates(min_value=date(1800, 1, 1)))
def test_birth_date_code_shape_and_monotonic_era(a: date, b: date) -> None:
    ca, cb = birth_date_code(a), birth_date_code(b)
    assert len(ca) == 9 and ca[1:] == f"{a:%Y%m%d}"
    if a <= b:
        assert ca[0] <= cb[0]


@settings(max_examples=200)
@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31)),
)
def test_validity_ends_on_fifth_birthday(birth: date, issued: date) -> None:
    when = datetime(issued.year, issued.month, issued.day, tzinfo=UTC)
    end = testpki._fifth_birthday_after(birth, when)
    assert (end.month, end.day) == (birth.month, birth.day) or (birth.month, birth.day) == (2, 29)
    # exactly five birthdays fall in (issue, end]
    assert issued.year + 4 <= end.year <= issued.year + 5
    assert end.date() > issued + timedelta(days=4 * 365)


# --- keys ----------------------------------------------------------------------------------


def test_key_derivation_is_deterministic_and_valid() -> None:
    k1 = testpki._derive_key("s", "label", 1024)
    k2 = testpki._derive_key("s", "label", 1024)
    k3 = testpki._derive_key("s", "other", 1024)
    assert k1.private_numbers() == k2.private_numbers()
    assert k1.public_key().public_numbers() != k3.public_key().public_numbers()
    assert k1.key_size == 1024
    # cryptography checks the CRT values when it builds the key; a signature must verify too
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    sig = k1.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
    k1.public_key().verify(sig, b"x", padding.PKCS1v15(), hashes.SHA256())


def test_disk_cache_round_trip_and_corruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JPKI_TESTPKI_CACHE", str(tmp_path))
    monkeypatch.setattr(testpki, "_KEYS", {})
    k1 = testpki.deterministic_key("cache-test", "a", 1024)
    files = list(tmp_path.glob("*.der"))
    assert len(files) == 1
    monkeypatch.setattr(testpki, "_KEYS", {})
    k2 = testpki.deterministic_key("cache-test", "a", 1024)
    assert k2.private_numbers() == k1.private_numbers()
    files[0].write_bytes(b"garbage")
    monkeypatch.setattr(testpki, "_KEYS", {})
    k3 = testpki.deterministic_key("cache-test", "a", 1024)
    assert k3.private_numbers() == k1.private_numbers()
    loaded = serialization.load_der_private_key(files[0].read_bytes(), None)
    assert isinstance(loaded, rsa.RSAPrivateKey)


def test_unwritable_cache_is_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    monkeypatch.setenv("JPKI_TESTPKI_CACHE", str(blocker / "sub"))
    monkeypatch.setattr(testpki, "_KEYS", {})
    assert testpki.deterministic_key("cache-test", "b", 1024).key_size == 1024


# --- certificates --------------------------------------------------------------------------


def test_certificates_are_byte_identical_across_instances(test_pki: TestPki) -> None:
    other = TestPki()
    assert other.sign_ca.der == test_pki.sign_ca.der
    assert other.issue_signing(sample_person(1)).der == test_pki.issue_signing(sample_person(1)).der
    assert other.issue_auth().der == test_pki.issue_auth().der
    assert other.issue_auth().jpki.der == test_pki.issue_auth().der
    assert TestPki("another-seed").sign_ca.der != test_pki.sign_ca.der


@pytest.mark.parametrize("ca", ["sign", "auth"])
def test_ca_shape(test_pki: TestPki, ca: str) -> None:
    issued = test_pki.ca(ca)  # type: ignore[arg-type]
    cert = issued.cert
    assert cert.subject == cert.issuer
    ous = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    assert (
        ous[0]
        == {"sign": "JPKI-TEST for digital signature", "auth": "JPKI-TEST for user authentication"}[
            ca
        ]
    )
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "JPKI-TEST"
    bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    assert bc.critical and isinstance(bc.value, x509.BasicConstraints) and bc.value.ca
    ku = _ext(cert, ExtensionOID.KEY_USAGE)
    assert ku.critical and isinstance(ku.value, x509.KeyUsage)
    assert ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    ski = _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(issued.key.public_key())
    cert.verify_directly_issued_by(cert)
    assert cert.not_valid_before_utc <= REAL_TODAY <= cert.not_valid_after_utc


def test_generations_share_dn_but_not_keys(test_pki: TestPki, test_pki_2015: TestPki) -> None:
    assert test_pki.sign_ca.cert.subject == test_pki_2015.sign_ca.cert.subject
    assert test_pki.sign_ca.der != test_pki_2015.sign_ca.der
    assert (
        test_pki.sign_ca.key.public_key().public_numbers()
        != test_pki_2015.sign_ca.key.public_key().public_numbers()
    )
    leaf = test_pki_2015.issue_signing()
    leaf.cert.verify_directly_issued_by(test_pki_2015.sign_ca.cert)
    with pytest.raises(Exception):  # noqa: B017 - cryptography raises InvalidSignature
        leaf.cert.verify_directly_issued_by(test_pki.sign_ca.cert)
    assert leaf.cert.not_valid_after_utc <= test_pki_2015.sign_ca.cert.not_valid_after_utc


@pytest.mark.parametrize("index", [0, 2])
def test_signing_certificate_shape(test_pki: TestPki, index: int) -> None:
    person = sample_person(index)
    issued = test_pki.issue_signing(person)
    cert = issued.cert
    cert.verify_directly_issued_by(test_pki.sign_ca.cert)
    assert cert.not_valid_before_utc <= REAL_TODAY <= cert.not_valid_after_utc
    assert [a.oid for a in cert.subject] == [
        NameOID.COUNTRY_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.COMMON_NAME,
    ]
    localities = cert.subject.get_attributes_for_oid(NameOID.LOCALITY_NAME)
    assert [a.value for a in localities] == [person.prefecture, person.municipality]
    ku = _ext(cert, ExtensionOID.KEY_USAGE)
    assert ku.critical and isinstance(ku.value, x509.KeyUsage)
    assert ku.value.digital_signature and ku.value.content_commitment
    assert not ku.value.key_cert_sign
    san = _ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert isinstance(san, x509.SubjectAlternativeName)
    others = san.get_values_for_type(x509.OtherName)
    assert [o.type_id for o in others] == list(OTHERNAME_ORDER)
    values = {o.type_id.dotted_string.rsplit(".", 1)[1]: _utf8(o.value) for o in others}
    assert values == {
        "1": person.name,
        "2": person.name_substitutes,
        "3": str(person.sex),
        "4": birth_date_code(person.birth_date),
        "5": person.address,
        "6": person.address_substitutes,
    }
    pol = _ext(cert, ExtensionOID.CERTIFICATE_POLICIES).value
    assert isinstance(pol, x509.CertificatePolicies)
    assert [p.policy_identifier for p in pol] == [SIGNING_POLICY_OID]
    ian = _ext(cert, ExtensionOID.ISSUER_ALTERNATIVE_NAME).value
    assert isinstance(ian, x509.IssuerAlternativeName)
    (dirname,) = ian.get_values_for_type(x509.DirectoryName)
    assert dirname.rfc4514_string() == "O=公的個人認証サービス,C=JP"
    dps = _ext(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    assert isinstance(dps, x509.CRLDistributionPoints)
    assert dps[0].full_name == [x509.DirectoryName(test_pki.crl_dp_name(person))]
    aki = _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
    ski = _ext(test_pki.sign_ca.cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ski.digest


def test_signing_options(test_pki: TestPki) -> None:
    nb = datetime(2026, 3, 1, tzinfo=UTC)
    na = datetime(2027, 3, 1, tzinfo=UTC)
    c = test_pki.issue_signing(
        label="custom",
        not_before=nb,
        not_after=na,
        serial=42,
        test_policy=True,
        ocsp_url="http://127.0.0.1:1/ocsp",
    ).cert
    assert c.serial_number == 42
    assert (c.not_valid_before_utc, c.not_valid_after_utc) == (nb, na)
    pol = _ext(c, ExtensionOID.CERTIFICATE_POLICIES).value
    assert isinstance(pol, x509.CertificatePolicies)
    assert pol[0].policy_identifier.dotted_string == "1.2.392.200149.8.5.1.0.20"
    phone = test_pki.issue_signing(phone=True).cert
    pol = _ext(phone, ExtensionOID.CERTIFICATE_POLICIES).value
    assert isinstance(pol, x509.CertificatePolicies)
    assert pol[0].policy_identifier.dotted_string == "1.2.392.200149.8.5.1.1.40"
    aia = _ext(c, ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    assert isinstance(aia, x509.AuthorityInformationAccess)
    assert aia[0].access_location.value == "http://127.0.0.1:1/ocsp"
    # renewal (new not_before) gives a new serial but the same key
    renewed = test_pki.issue_signing(not_before=nb)
    assert renewed.cert.serial_number != test_pki.issue_signing().cert.serial_number
    assert renewed.key is test_pki.issue_signing().key


def test_auth_certificate_shape(test_pki: TestPki) -> None:
    cert = test_pki.issue_auth().cert
    cert.verify_directly_issued_by(test_pki.auth_ca.cert)
    assert [a.oid for a in cert.subject] == [NameOID.COUNTRY_NAME, NameOID.COMMON_NAME]
    ku = _ext(cert, ExtensionOID.KEY_USAGE)
    assert ku.critical and isinstance(ku.value, x509.KeyUsage)
    assert ku.value.digital_signature and not ku.value.content_commitment
    pol = _ext(cert, ExtensionOID.CERTIFICATE_POLICIES).value
    assert isinstance(pol, x509.CertificatePolicies)
    assert pol[0].policy_identifier.dotted_string == "1.2.392.200149.8.5.1.3.30"
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert test_pki.issue_auth(label="other").cert.subject != cert.subject


@pytest.mark.parametrize("ca", ["sign", "auth"])
def test_ocsp_responder(test_pki: TestPki, ca: str) -> None:
    issued = test_pki.issue_ocsp_responder(ca)  # type: ignore[arg-type]
    issued.cert.verify_directly_issued_by(test_pki.ca(ca).cert)  # type: ignore[arg-type]
    eku = _ext(issued.cert, ExtensionOID.EXTENDED_KEY_USAGE).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    _ext(issued.cert, ExtensionOID.OCSP_NO_CHECK)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        TestPki(generation=2000)
    with pytest.raises(ValueError):
        TestPki(now=datetime(2026, 1, 1))  # naive on purpose
    with pytest.raises(ValueError):
        TestPki().ca("other")  # type: ignore[arg-type]


def test_crl(test_pki: TestPki) -> None:
    person = sample_person(0)
    leaf = test_pki.issue_signing(person)
    at = datetime(2026, 6, 1, tzinfo=UTC)
    entries = [(leaf.cert.serial_number, x509.ReasonFlags.affiliation_changed, at), (7, None, at)]
    nxt = at + timedelta(days=1)
    kwargs: dict[str, Any] = {"this_update": at, "next_update": nxt, "number": 99}
    der = test_pki.make_crl("sign", entries, **kwargs, idp_name=test_pki.crl_dp_name(person))
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(test_pki.sign_ca.key.public_key())
    assert crl.issuer == test_pki.sign_ca.cert.subject
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 99
    idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical
    assert idp.value.full_name == [x509.DirectoryName(test_pki.crl_dp_name(person))]
    entry = crl.get_revoked_certificate_by_serial_number(leaf.cert.serial_number)
    assert entry is not None and entry.revocation_date_utc == at
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.affiliation_changed
    plain = crl.get_revoked_certificate_by_serial_number(7)
    assert plain is not None and len(plain.extensions) == 0
    again = test_pki.make_crl("sign", entries, **kwargs, idp_name=test_pki.crl_dp_name(person))
    assert der == again
    empty = x509.load_der_x509_crl(test_pki.make_crl("auth"))
    assert len(empty) == 0 and empty.is_signature_valid(test_pki.auth_ca.key.public_key())


def test_openssl_accepts_chain_and_crl(test_pki: TestPki, tmp_path: Path) -> None:
    """The real thing: openssl verifies the chain and finds the revocation."""
    person = sample_person(1)
    leaf = test_pki.issue_signing(person)
    (tmp_path / "ca.pem").write_bytes(test_pki.sign_ca.pem)
    (tmp_path / "leaf.pem").write_bytes(leaf.pem)
    at = test_pki.now
    crl = x509.load_der_x509_crl(
        test_pki.make_crl("sign", [(leaf.cert.serial_number, x509.ReasonFlags.superseded, at)])
    )
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    base = ["openssl", "verify", "-attime", str(int(at.timestamp()) + 60), "-CAfile"]
    ok = subprocess.run(
        [*base, tmp_path / "ca.pem", tmp_path / "leaf.pem"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    revoked = subprocess.run(
        [
            *base,
            tmp_path / "ca.pem",
            "-crl_check",
            "-CRLfile",
            tmp_path / "crl.pem",
            tmp_path / "leaf.pem",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert revoked.returncode != 0
    assert "revoked" in (revoked.stdout + revoked.stderr).lower()


# --- committed vectors (vectors/make_pki_vectors.py) -----------------------------------------

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _pki_vectors_module() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_pki_vectors", VECTORS / "make_pki_vectors.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pki_vectors_are_what_the_generator_makes() -> None:
    files: dict[str, bytes] = _pki_vectors_module().build()  # type: ignore[attr-defined]
    assert len(files) == 8
    for name, data in files.items():
        assert (VECTORS / name).read_bytes() == data, f"{name}: run vectors/make_pki_vectors.py"


def test_pki_vectors_are_usable(tmp_path: Path) -> None:
    import shutil

    from jpki.cert import CertKind, JpkiCertificate
    from jpki.sim import SimulatedCard

    def load(name: str) -> JpkiCertificate:
        return JpkiCertificate.load((VECTORS / "pki" / name).read_bytes())

    sign, sign_ca = load("sign.pem"), load("sign-ca.pem")
    assert sign.kind is CertKind.SIGNING and sign_ca.kind is CertKind.SIGNING_CA
    assert load("auth.pem").kind is CertKind.AUTHENTICATION
    assert load("ocsp-responder.pem").kind is CertKind.OCSP_RESPONDER
    sign.certificate.verify_directly_issued_by(sign_ca.certificate)
    crl = x509.load_der_x509_crl((VECTORS / "pki" / "sign-ca.crl").read_bytes())
    assert crl.is_signature_valid(sign_ca.public_key)  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(sign.serial)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    # The committed profile is a working simulated card holding the same certificates.
    card = SimulatedCard(shutil.copytree(VECTORS / "sim" / "profile", tmp_path / "card"))
    assert card.profile.sign_cert == sign.der
    card.close()
