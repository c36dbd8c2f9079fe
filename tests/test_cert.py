"""Tests for the JPKI certificate model (jpki.cert) on test-PKI, openssl-made and real certs."""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.cert import (
    BasicInfo,
    CertKind,
    DistributionPointName,
    Era,
    JpkiCertificate,
    Sex,
    era_for_date,
    name_to_text,
)
from jpki.errors import CertificateError, JpkiError
from jpki.testing.pki import TestPki, sample_person

ROOTS = {
    "sign_ca_2015.pem": (CertKind.SIGNING_CA, "196454"),
    "sign_ca_2023.pem": (CertKind.SIGNING_CA, "d227f6"),
    "auth_ca_2015.pem": (CertKind.AUTHENTICATION_CA, "4dcfc4"),
    "auth_ca_2023.pem": (CertKind.AUTHENTICATION_CA, "64114f"),
}


# --- real J-LIS roots ----------------------------------------------------------------------


@pytest.mark.parametrize("filename", sorted(ROOTS))
def test_real_jlis_roots_classify(jlis_roots_dir: Path, filename: str) -> None:
    kind, fp_prefix = ROOTS[filename]
    c = JpkiCertificate.load((jlis_roots_dir / filename).read_bytes())
    assert c.kind is kind
    assert c.is_ca and not c.is_test
    assert c.fingerprint_sha256.hex().startswith(fp_prefix)
    assert c.subject == c.issuer
    assert c.subject_text.startswith("C=JP, O=JPKI, OU=JPKI for ")
    assert c.key_usage == ("keyCertSign", "cRLSign") and c.key_usage_critical
    assert c.basic_info is None
    assert c.policies == ()
    assert c.crl_dp_directory_names == (c.subject,)
    assert c.subject_key_id is not None and len(c.subject_key_id) == 20
    assert c.not_after.tzinfo is not None
    assert c.not_after.year in (2025, 2033)
    # the signed part sliced from the DER is what cryptography signed
    assert c.tbs_der == c.certificate.tbs_certificate_bytes
    c.certificate.verify_directly_issued_by(c.certificate)


def test_real_root_loads_from_der_and_base64(jlis_roots_dir: Path) -> None:
    pem = (jlis_roots_dir / "sign_ca_2023.pem").read_bytes()
    a = JpkiCertificate.load(pem)
    b = JpkiCertificate.load(a.der)
    c = JpkiCertificate.load(base64.b64encode(a.der))
    d = JpkiCertificate.load(base64.encodebytes(a.der) + b"\n")
    assert a == b == c == d
    assert hash(a) == hash(b)
    assert b.der is not None and b.der == a.certificate.public_bytes(serialization.Encoding.DER)


# --- test PKI ------------------------------------------------------------------------------


def test_test_pki_kinds(test_pki: TestPki) -> None:
    cases = {
        CertKind.SIGNING_CA: test_pki.sign_ca,
        CertKind.AUTHENTICATION_CA: test_pki.auth_ca,
        CertKind.SIGNING: test_pki.issue_signing(),
        CertKind.AUTHENTICATION: test_pki.issue_auth(),
        CertKind.PHONE_SIGNING: test_pki.issue_signing(phone=True),
        CertKind.OCSP_RESPONDER: test_pki.issue_ocsp_responder(),
    }
    for kind, issued in cases.items():
        c = JpkiCertificate.load(issued.pem)
        assert c.kind is kind, kind
        assert c.is_test
        assert c.kind == kind.value  # str enum compares with its value


def test_test_policy_signing(test_pki: TestPki) -> None:
    c = JpkiCertificate.from_cryptography(test_pki.issue_signing(test_policy=True).cert)
    assert c.kind is CertKind.SIGNING
    assert c.policies == ("1.2.392.200149.8.5.1.0.20",)


@pytest.mark.parametrize("index", range(5))
def test_basic_info_round_trip(test_pki: TestPki, index: int) -> None:
    person = sample_person(index)
    issued = test_pki.issue_signing(person, ocsp_url="http://127.0.0.1:8080/ocsp")
    c = JpkiCertificate.load(issued.der)
    info = c.basic_info
    assert info == BasicInfo(
        name=person.name,
        name_substitutes=tuple(f == "1" for f in person.name_substitutes),
        sex=Sex(person.sex),
        birth_date=person.birth_date,
        birth_era=era_for_date(person.birth_date),
        address=person.address,
        address_substitutes=tuple(f == "1" for f in person.address_substitutes),
        other={},
    )
    assert c.serial == issued.cert.serial_number
    assert int(c.serial_hex, 16) == c.serial and len(c.serial_hex) % 2 == 0
    assert c.not_before == issued.cert.not_valid_before_utc
    assert c.not_after == issued.cert.not_valid_after_utc
    assert c.crl_distribution_points == (
        DistributionPointName(directory_name=test_pki.crl_dp_name(person)),
    )
    assert c.authority_key_id == JpkiCertificate.load(test_pki.sign_ca.der).subject_key_id
    assert c.ocsp_urls == ("http://127.0.0.1:8080/ocsp",)
    assert c.fingerprint_sha256 == issued.cert.fingerprint(hashes.SHA256())
    pub = c.public_key
    assert isinstance(pub, rsa.RSAPublicKey)
    sig = issued.key.sign(b"m", padding.PKCS1v15(), hashes.SHA256())
    pub.verify(sig, b"m", padding.PKCS1v15(), hashes.SHA256())


def test_substitute_flags_align_per_code_point(test_pki: TestPki) -> None:
    info = JpkiCertificate.load(test_pki.issue_signing(sample_person(2)).der).basic_info
    assert info is not None
    flagged = [ch for ch, f in zip(info.name, info.name_substitutes, strict=True) if f]
    assert flagged == ["\U00020bb7"]
    flagged = [ch for ch, f in zip(info.address, info.address_substitutes, strict=True) if f]
    assert flagged == ["\ufa11"]
    assert info.birth_era is Era.SHOWA


def test_auth_certificate_has_no_basic_info(test_pki: TestPki) -> None:
    c = JpkiCertificate.load(test_pki.issue_auth().pem)
    assert c.basic_info is None
    assert c.key_usage == ("digitalSignature",)
    assert c.as_dict()["basic_info"] is None


def test_as_dict_schema(test_pki: TestPki) -> None:
    d = JpkiCertificate.load(test_pki.issue_signing(sample_person(1)).der).as_dict()
    assert d["kind"] == "signing" and d["is_test"] is True
    assert d["basic_info"]["birth_date"] == "1992-02-29"
    assert d["basic_info"]["birth_era"] == "heisei"
    assert d["basic_info"]["sex"] == "female"
    assert d["crl_distribution_points"][0]["type"] == "directoryName"
    assert datetime.fromisoformat(d["not_before"]).tzinfo is not None
    for key in ("subject", "issuer", "serial_hex", "not_after", "policies", "key_usage",
                "fingerprint_sha256", "authority_key_id", "subject_key_id"):  # fmt: skip
        assert key in d


@pytest.mark.parametrize(
    ("d", "era"),
    [
        (date(1868, 10, 22), Era.UNKNOWN),
        (date(1868, 10, 23), Era.MEIJI),
        (date(1912, 7, 29), Era.MEIJI),
        (date(1912, 7, 30), Era.TAISHO),
        (date(1926, 12, 25), Era.SHOWA),
        (date(1989, 1, 7), Era.SHOWA),
        (date(1989, 1, 8), Era.HEISEI),
        (date(2019, 5, 1), Era.REIWA),
    ],
)
def test_era_for_date(d: date, era: Era) -> None:
    assert era_for_date(d) is era


def test_name_to_text_keeps_certificate_order() -> None:
    name = x509.Name.from_rfc4514_string("CN=x,O=JPKI,C=JP")
    assert name_to_text(name) == "C=JP, O=JPKI, CN=x"


# --- kind rule edge cases ------------------------------------------------------------------


def _custom(
    pki: TestPki,
    *,
    ku: x509.KeyUsage | None,
    policy: str | None,
    issuer: str = "sign",
    ca: bool = False,
    subject: x509.Name | None = None,
) -> JpkiCertificate:
    key = pki.key("custom-kind")
    issuer_cert = pki.ca(issuer)  # type: ignore[arg-type]
    b = (
        x509.CertificateBuilder()
        .subject_name(subject or x509.Name.from_rfc4514_string("CN=x,C=JP"))
        .issuer_name(issuer_cert.cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
    )
    if ku is not None:
        b = b.add_extension(ku, critical=True)
    if policy:
        pi = x509.PolicyInformation(x509.ObjectIdentifier(policy), None)
        b = b.add_extension(x509.CertificatePolicies([pi]), critical=False)
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return JpkiCertificate.from_cryptography(b.sign(issuer_cert.key, hashes.SHA256()))


def _ku(*bits: str) -> x509.KeyUsage:
    names = (
        "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
        "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
    )  # fmt: skip
    return x509.KeyUsage(**{n: n in bits for n in names})  # type: ignore[arg-type]


SIGN_KU = ("digital_signature", "content_commitment")


@pytest.mark.parametrize(
    ("ku", "policy", "issuer", "kind"),
    [
        (SIGN_KU, "1.2.392.200149.8.5.1.1.20", "sign", CertKind.SIGNING),
        (("digital_signature",), "1.2.392.200149.8.5.1.1.20", "sign", CertKind.UNKNOWN),
        (("digital_signature",), "1.2.392.200149.8.5.1.3.30", "auth", CertKind.AUTHENTICATION),
        (SIGN_KU, "1.2.392.200149.8.5.1.3.30", "auth", CertKind.UNKNOWN),
        (("digital_signature",), "1.2.392.200149.8.5.1.3.40", "auth",
         CertKind.PHONE_AUTHENTICATION),
        (SIGN_KU, "1.2.392.200149.8.5.1.1.40", "sign", CertKind.PHONE_SIGNING),
        (SIGN_KU, None, "sign", CertKind.SIGNING),  # fallback on the issuer's OU
        (("digital_signature",), None, "auth", CertKind.AUTHENTICATION),
        (("digital_signature",), None, "sign", CertKind.UNKNOWN),
        (SIGN_KU, "1.2.3.4", "sign", CertKind.SIGNING),
        (None, "1.2.392.200149.8.5.1.1.20", "sign", CertKind.UNKNOWN),
        (SIGN_KU, "1.2.392.200149.8.5.1.9.99", "sign", CertKind.SIGNING),
    ],
)  # fmt: skip
def test_kind_rule(
    test_pki: TestPki, ku: tuple[str, ...] | None, policy: str | None, issuer: str, kind: CertKind
) -> None:
    c = _custom(test_pki, ku=_ku(*ku) if ku is not None else None, policy=policy, issuer=issuer)
    assert c.kind is kind


def test_ca_kind_needs_jpki_name_and_key_cert_sign(test_pki: TestPki) -> None:
    other = x509.Name.from_rfc4514_string("OU=Other for digital signature,O=Someone,C=JP")
    c = _custom(test_pki, ku=_ku("key_cert_sign"), policy=None, ca=True, subject=other)
    assert c.kind is CertKind.UNKNOWN and c.is_ca
    jpki = test_pki.sign_ca.cert.subject
    c = _custom(test_pki, ku=_ku("digital_signature"), policy=None, ca=True, subject=jpki)
    assert c.kind is CertKind.UNKNOWN
    c = _custom(test_pki, ku=_ku("key_cert_sign"), policy=None, ca=True, subject=jpki)
    assert c.kind is CertKind.SIGNING_CA


# --- certificates made by the openssl CLI --------------------------------------------------

_EXT = """
[ext]
keyUsage = critical, digitalSignature, nonRepudiation
certificatePolicies = 1.2.392.200149.8.5.1.1.20
subjectAltName = @san
issuerAltName = dirName:ian_dn
crlDistributionPoints = crldp
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash

[san]
otherName.1 = 1.2.392.200149.8.5.5.1;FORMAT:UTF8,UTF8:試験　太郎
otherName.2 = 1.2.392.200149.8.5.5.4;UTF8:{birth}
otherName.3 = 1.2.392.200149.8.5.5.3;{sex_type}:1
otherName.4 = 1.2.392.200149.8.5.5.5;FORMAT:UTF8,UTF8:東京都千代田区試験町1-2-3
otherName.5 = 1.2.392.200149.8.5.5.2;UTF8:00000
otherName.6 = 1.2.392.200149.8.5.5.6;UTF8:000000000000000
otherName.7 = 1.2.392.200149.8.5.5.7;FORMAT:UTF8,UTF8:旧姓
otherName.8 = 1.2.392.200149.8.5.5.8;INT:5

[ian_dn]
C = JP
O = JPKI-TEST

[crldp]
fullname = dirName:dp_dn, URI:http://127.0.0.1/crl/chiyoda.crl

[dp_dn]
C = JP
O = JPKI-TEST
OU = CRL Distribution Points
CN = Chiyoda-ku CRLDP
"""


def _openssl_cert(
    pki: TestPki, tmp: Path, *, birth: str = "319850401", sex_type: str = "UTF8"
) -> bytes:
    ca_key = pki.sign_ca.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    leaf_key = pki.key("openssl-leaf").private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp / "ca.key").write_bytes(ca_key)
    (tmp / "ca.pem").write_bytes(pki.sign_ca.pem)
    (tmp / "leaf.key").write_bytes(leaf_key)
    (tmp / "ext.cnf").write_text(_EXT.format(birth=birth, sex_type=sex_type), encoding="utf-8")
    run = {"check": True, "capture_output": True, "cwd": tmp}
    subprocess.run(["openssl", "req", "-new", "-key", "leaf.key", "-out", "leaf.csr",
                    "-subj", "/C=JP/L=Tokyo/L=Chiyoda-ku/CN=OPENSSL0001"], **run)  # type: ignore[call-overload]  # fmt: skip
    subprocess.run(["openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem",
                    "-CAkey", "ca.key", "-set_serial", "0x0123456789", "-days", "365",
                    "-sha256", "-extfile", "ext.cnf", "-extensions", "ext",
                    "-out", "leaf.pem"], **run)  # type: ignore[call-overload]  # fmt: skip
    return (tmp / "leaf.pem").read_bytes()


def test_openssl_made_certificate(test_pki: TestPki, tmp_path: Path) -> None:
    c = JpkiCertificate.load(_openssl_cert(test_pki, tmp_path))
    assert c.kind is CertKind.SIGNING and c.is_test
    assert c.serial == 0x0123456789 and c.serial_hex == "0123456789"
    assert c.subject_text == "C=JP, L=Tokyo, L=Chiyoda-ku, CN=OPENSSL0001"
    info = c.basic_info
    assert info is not None
    assert info.name == "試験　太郎" and info.name_substitutes == (False,) * 5
    assert info.birth_date == date(1985, 4, 1) and info.birth_era is Era.SHOWA
    assert info.sex is Sex.MALE
    assert info.address == "東京都千代田区試験町1-2-3"
    # unknown otherNames are kept: text when UTF8String, DER hex otherwise
    assert info.other == {"1.2.392.200149.8.5.5.7": "旧姓", "1.2.392.200149.8.5.5.8": "der:020105"}
    assert [dp.as_dict()["type"] for dp in c.crl_distribution_points] == ["directoryName", "uri"]
    assert c.crl_distribution_points[1].uri == "http://127.0.0.1/crl/chiyoda.crl"
    assert c.crl_distribution_points[0].text.endswith("CN=Chiyoda-ku CRLDP")
    assert c.authority_key_id == JpkiCertificate.load(test_pki.sign_ca.der).subject_key_id
    c.certificate.verify_directly_issued_by(test_pki.sign_ca.cert)


@pytest.mark.parametrize(
    ("birth", "sex_type", "message"),
    [
        ("619850401", "UTF8", "era"),
        ("31985041", "UTF8", "EYYYYMMDD"),
        ("319850401", "IA5", "UTF8String"),
        ("319850401", "PRINTABLESTRING", "UTF8String"),
        ("319850401", "INT", "UTF8String"),
    ],
)
def test_openssl_made_bad_basic_info(
    test_pki: TestPki, tmp_path: Path, birth: str, sex_type: str, message: str
) -> None:
    c = JpkiCertificate.load(_openssl_cert(test_pki, tmp_path, birth=birth, sex_type=sex_type))
    assert c.kind is CertKind.SIGNING  # the rest of the certificate stays readable
    with pytest.raises(CertificateError, match=message):
        _ = c.basic_info


# --- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        b"\x30\x03\x02\x01\x01",
        b"\x30\x82\xff\xff",
        b"not base64 at all?",
        base64.b64encode(b"\x30\x00"),
    ],
)
def test_load_rejects_garbage(data: bytes) -> None:
    with pytest.raises(CertificateError):
        JpkiCertificate.load(data)


def test_trailing_bytes_after_der_rejected(test_pki: TestPki) -> None:
    with pytest.raises(CertificateError, match="header says"):
        JpkiCertificate.load(test_pki.sign_ca.der + b"\x00")
    assert issubclass(CertificateError, JpkiError)


# --- the raw-DER fast path agrees with cryptography's full decode -----------------------------


def _reference(c: JpkiCertificate) -> dict[str, object]:
    """The same fields computed through cryptography's extension objects."""
    cert = c.certificate
    exts = {e.oid: e for e in cert.extensions}
    ku = exts.get(x509.oid.ExtensionOID.KEY_USAGE)
    names = (("digital_signature", "digitalSignature"), ("content_commitment", "nonRepudiation"),
             ("key_encipherment", "keyEncipherment"), ("data_encipherment", "dataEncipherment"),
             ("key_agreement", "keyAgreement"), ("key_cert_sign", "keyCertSign"),
             ("crl_sign", "cRLSign"))  # fmt: skip
    ku_names: tuple[str, ...] = ()
    if ku is not None and isinstance(ku.value, x509.KeyUsage):
        ku_names = tuple(rfc for attr, rfc in names if getattr(ku.value, attr))
    bc = exts.get(x509.oid.ExtensionOID.BASIC_CONSTRAINTS)
    pol = exts.get(x509.oid.ExtensionOID.CERTIFICATE_POLICIES)
    ski = exts.get(x509.oid.ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    aki = exts.get(x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    eku = exts.get(x509.oid.ExtensionOID.EXTENDED_KEY_USAGE)
    san = exts.get(x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    return {
        "is_ca": bool(bc and bc.value.ca),  # type: ignore[attr-defined]
        "key_usage": ku_names,
        "key_usage_critical": bool(ku and ku.critical),
        "policies": tuple(p.policy_identifier.dotted_string for p in pol.value)  # type: ignore[attr-defined]
        if pol else (),
        "subject_key_id": ski.value.digest if ski else None,  # type: ignore[attr-defined]
        "authority_key_id": aki.value.key_identifier if aki else None,  # type: ignore[attr-defined]
        "eku": tuple(o.dotted_string for o in eku.value) if eku else (),  # type: ignore[attr-defined]
        "other_names": [(o.type_id.dotted_string, o.value)
                        for o in san.value.get_values_for_type(x509.OtherName)]  # type: ignore[attr-defined]
        if san else [],
    }  # fmt: skip


def _fast(c: JpkiCertificate) -> dict[str, object]:
    from jpki.cert.der import EXT_SAN as _EXT_SAN
    from jpki.cert.der import other_names as _other_names

    san = c._raw.extensions.get(_EXT_SAN)
    return {
        "is_ca": c.is_ca,
        "key_usage": c.key_usage,
        "key_usage_critical": c.key_usage_critical,
        "policies": c.policies,
        "subject_key_id": c.subject_key_id,
        "authority_key_id": c.authority_key_id,
        "eku": c.extended_key_usage,
        "other_names": _other_names(c.der, san[1], san[2]) if san is not None else [],
    }


def test_raw_fields_match_cryptography(
    test_pki: TestPki, jlis_roots_dir: Path, tmp_path: Path
) -> None:
    ders = [p.read_bytes() for p in sorted(jlis_roots_dir.glob("*.pem"))]
    ders += [i.der for i in (test_pki.sign_ca, test_pki.auth_ca, test_pki.issue_auth(),
                             test_pki.issue_ocsp_responder("auth"))]  # fmt: skip
    ders += [test_pki.issue_signing(sample_person(i)).der for i in range(6)]
    ders.append(_openssl_cert(test_pki, tmp_path))
    for der in ders:
        c = JpkiCertificate.load(der)
        assert _fast(c) == _reference(c)
