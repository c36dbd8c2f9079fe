"""Property tests: malformed certificates and otherName values end in CertificateError only."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jpki.cert import Era, JpkiCertificate, Sex
from jpki.errors import CertificateError
from jpki.testing.pki import OTHERNAME_ORDER, TestPki, sample_person

# cryptography warns (not fails) about e.g. a 3-letter country code made by a bit flip
pytestmark = pytest.mark.filterwarnings("ignore:Attribute's length:UserWarning")

_PKI = TestPki()
_VALID = _PKI.issue_signing(sample_person(2), ocsp_url="http://127.0.0.1/ocsp").der
_FUZZ = settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def _touch_all(c: JpkiCertificate) -> None:
    """Read every field, as `jpki cert show --json` does."""
    c.as_dict()
    _ = (c.tbs_der, c.public_key, repr(c), c.crl_dp_directory_names)


def _load_and_touch(data: bytes) -> None:
    with contextlib.suppress(CertificateError):
        _touch_all(JpkiCertificate.load(data))


def test_valid_certificate_touches_cleanly() -> None:
    _touch_all(JpkiCertificate.load(_VALID))


@_FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    _load_and_touch(data)


@_FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_behind_a_sequence_header(body: bytes) -> None:
    n = len(body)
    _load_and_touch(b"\x30\x82" + n.to_bytes(2, "big") + body)


@_FUZZ
@given(st.integers(min_value=0, max_value=len(_VALID) - 1))
def test_truncations(cut: int) -> None:
    with pytest.raises(CertificateError):
        JpkiCertificate.load(_VALID[:cut])


@_FUZZ
@given(st.lists(st.integers(min_value=0, max_value=len(_VALID) * 8 - 1), min_size=1, max_size=4))
def test_bit_flips(bits: list[int]) -> None:
    data = bytearray(_VALID)
    for bit in bits:
        data[bit // 8] ^= 1 << (bit % 8)
    _load_and_touch(bytes(data))


@_FUZZ
@given(st.integers(min_value=0, max_value=len(_VALID) - 1), st.binary(min_size=1, max_size=8))
def test_splices(pos: int, junk: bytes) -> None:
    _load_and_touch(_VALID[:pos] + junk + _VALID[pos + len(junk) :])


# --- otherName values built into real, well-formed certificates -----------------------------

_KEY = _PKI.key("fuzz-leaf")


def _der_string(tag: int, raw: bytes) -> bytes:
    n = len(raw)
    if n < 0x80:
        return bytes([tag, n]) + raw
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(body)]) + body + raw


def _utf8(text: str) -> bytes:
    return _der_string(0x0C, text.encode())


def _cert(values: dict[str, bytes]) -> JpkiCertificate:
    names = [x509.OtherName(x509.ObjectIdentifier(oid), v) for oid, v in values.items()]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=fuzz,C=JP"))
        .issuer_name(_PKI.sign_ca.cert.subject)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(_PKI.sign_ca.key, hashes.SHA256())
    )
    return JpkiCertificate.from_cryptography(cert)


def _good_values(name: str, address: str, birth: str = "319850401") -> dict[str, bytes]:
    texts = [name, birth, "1", address, "0" * len(name), "0" * len(address)]
    return {oid.dotted_string: _utf8(t) for oid, t in zip(OTHERNAME_ORDER, texts, strict=True)}


_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=100, deadline=None)
@given(
    name=_TEXT,
    address=_TEXT,
    birth=st.dates(min_value=date(1000, 1, 1)),
    sex=st.sampled_from(Sex),
    flags=st.data(),
)
def test_basic_info_round_trip(
    name: str, address: str, birth: date, sex: Sex, flags: st.DataObject
) -> None:
    nflags = flags.draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    aflags = flags.draw(st.lists(st.booleans(), min_size=len(address), max_size=len(address)))
    era = flags.draw(st.sampled_from(Era))
    values = _good_values(name, address, f"{int(era)}{birth.year:04d}{birth:%m%d}")
    values["1.2.392.200149.8.5.5.3"] = _utf8(str(int(sex)))
    values["1.2.392.200149.8.5.5.2"] = _utf8("".join("01"[f] for f in nflags))
    values["1.2.392.200149.8.5.5.6"] = _utf8("".join("01"[f] for f in aflags))
    info = _cert(values).basic_info
    assert info is not None
    known = None if era is Era.UNKNOWN else birth  # era 0: the date is not known either
    assert (info.name, info.address, info.sex, info.birth_date, info.birth_era) == (
        name, address, sex, known, era,
    )  # fmt: skip
    assert info.substitute_flags_consistent
    assert info.name_substitutes == tuple(nflags)
    assert info.address_substitutes == tuple(aflags)


_BASIC = [oid.dotted_string for oid in OTHERNAME_ORDER]


@settings(max_examples=150, deadline=None)
@given(
    oid=st.sampled_from(_BASIC),
    tag=st.sampled_from([0x02, 0x04, 0x0C, 0x13, 0x16, 0x1E, 0x30]),
    raw=st.binary(max_size=20),
)
def test_wrong_or_odd_other_name_values(oid: str, tag: int, raw: bytes) -> None:
    """Any replacement value either parses to a consistent BasicInfo or raises CertificateError."""
    values = _good_values("試験　太郎", "東京都")
    values[oid] = _der_string(tag, raw)
    c = _cert(values)
    try:
        info = c.basic_info
    except CertificateError:
        return
    # only a UTF8String with acceptable content can get through
    assert tag == 0x0C
    assert info is not None
    consistent = len(info.name_substitutes) == len(info.name) and len(
        info.address_substitutes
    ) == len(info.address)
    assert info.substitute_flags_consistent is consistent


@pytest.mark.parametrize(
    "birth",
    ["5202312", "5202312310", "x20231231", "５20231231", "920231231", " 20231231", "5-2023123"],
)  # fmt: skip
def test_bad_birth_dates(birth: str) -> None:
    with pytest.raises(CertificateError):
        _ = _cert(_good_values("試験　太郎", "東京都", birth)).basic_info


@pytest.mark.parametrize(
    ("birth", "era"),
    [("520231340", Era.REIWA), ("520230229", Era.REIWA), ("319850000", Era.SHOWA),
     ("319850400", Era.SHOWA), ("019850401", Era.UNKNOWN), ("000000000", Era.UNKNOWN)],
)  # fmt: skip
def test_partly_unknown_birth_date_is_none_with_the_text_kept(birth: str, era: Era) -> None:
    # Era 0 (unknown) or month/day 00: the rest of the basic information stays readable.
    info = _cert(_good_values("試験　太郎", "東京都", birth)).basic_info
    assert info is not None and info.name == "試験　太郎"
    assert info.birth_date is None and info.birth_date_raw == birth and info.birth_era is era
    d = info.as_dict()
    assert d["birth_date"] is None and d["birth_date_raw"] == birth


def test_substitute_flag_count_mismatch_keeps_the_text() -> None:
    values = _good_values("試験　太郎", "東京都")
    values["1.2.392.200149.8.5.5.2"] = _utf8("0100")  # 4 flags for 5 characters
    info = _cert(values).basic_info
    assert info is not None and info.name == "試験　太郎"
    assert info.name_substitutes == (False, True, False, False)
    assert info.substitute_flags_consistent is False
    assert info.as_dict()["substitute_flags_consistent"] is False
    assert _cert(_good_values("試験　太郎", "東京都")).basic_info.substitute_flags_consistent  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("oid", "value", "message"),
    [
        ("1.2.392.200149.8.5.5.3", "4", "sex"),
        ("1.2.392.200149.8.5.5.3", "", "sex"),
        ("1.2.392.200149.8.5.5.2", "0020 ", "0/1"),
        ("1.2.392.200149.8.5.5.6", "0x", "address substitute flags"),
    ],
)
def test_bad_field_values(oid: str, value: str, message: str) -> None:
    values = _good_values("試験　太郎", "東京都")
    values[oid] = _utf8(value)
    with pytest.raises(CertificateError, match=message):
        _ = _cert(values).basic_info


def test_missing_and_duplicate_fields() -> None:
    values = _good_values("試験　太郎", "東京都")
    del values["1.2.392.200149.8.5.5.4"]
    with pytest.raises(CertificateError, match="missing"):
        _ = _cert(values).basic_info
    good = _good_values("試験　太郎", "東京都")
    names = [x509.OtherName(x509.ObjectIdentifier(o), v) for o, v in good.items()]
    names.append(names[0])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=dup"))
        .issuer_name(x509.Name.from_rfc4514_string("CN=dup"))
        .public_key(_KEY.public_key())
        .serial_number(2)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(_KEY, hashes.SHA256())
    )
    with pytest.raises(CertificateError, match="twice"):
        _ = JpkiCertificate.from_cryptography(cert).basic_info


def test_only_unknown_other_names_give_no_basic_info() -> None:
    assert _cert({"1.2.3.4": _utf8("x")}).basic_info is None
