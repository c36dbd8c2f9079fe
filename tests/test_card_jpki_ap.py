"""JpkiAp against a scripted fake connection: exact APDUs, PIN guard, format checks."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki.card import CertSlot, JpkiAp, KeyKind, SignScheme, TokenKind
from jpki.card.protocol import CardProtocol
from jpki.digestinfo import (
    PREFIXES,
    PREFIXES_NO_NULL,
    HashName,
    build_digest_info,
    digest_info_for,
    parse_digest_info,
)
from jpki.errors import (
    JpkiError,
    LastTryWrongPin,
    PinBlocked,
    PinFormatError,
    PinGuardError,
    SecurityStatusError,
    SignatureFormatError,
    UsageError,
    WrongPin,
)
from jpki.secret import Secret
from test_card_protocol import FileCard, Scripted, der, h

SELECT_JPKI = (h("00A4040C0AD392F000260100000001"), h("9000"))
SELECT_AUTH_PIN = (h("00A4020C020018"), h("9000"))
SELECT_SIGN_PIN = (h("00A4020C02001B"), h("9000"))
EMPTY_VERIFY = h("00200080")


def ap(*pairs: tuple[bytes | None, bytes]) -> tuple[JpkiAp, Scripted]:
    conn = Scripted(SELECT_JPKI, *pairs)
    return JpkiAp(conn), conn


def test_constructor_selects_jpki_ap_and_accepts_protocol() -> None:
    conn = Scripted(SELECT_JPKI)
    JpkiAp(CardProtocol(conn))
    assert conn.sent == [SELECT_JPKI[0]]


def test_token_info_label_and_kind() -> None:
    label = b"JPKIAPICCTOKEN2".ljust(32, b" ")
    jpki, _ = ap((h("00A4020C020006"), h("9000")), (h("00B00000A0"), label + h("9000")))
    info = jpki.token_info()
    assert info.label == "JPKIAPICCTOKEN2"
    assert info.kind is TokenKind.MY_NUMBER_CARD
    assert info.counters is None  # a short file: only the label


def test_token_info_full_ck_token_info() -> None:
    # PKCS#11 CK_TOKEN_INFO laid out by hand: 4 strings, 11 32-bit big-endian integers,
    # two 2-byte versions, utcTime[16] = 160 bytes.
    ints = [0x0000040D, 0, 0, 0, 0, 16, 4, 1, 2, 3, 4]
    raw = (
        b"JPKIAPICCTOKEN2".ljust(32)
        + b"JPKI".ljust(32)
        + b"MyNumberCard".ljust(16)
        + b"0123456789ABCDEF"
        + b"".join(i.to_bytes(4, "big") for i in ints)
        + b"\x01\x00\x02\x01"
        + b" " * 16
    )
    assert len(raw) == 160
    jpki, _ = ap((None, h("9000")), (h("00B00000A0"), raw + h("9000")))
    info = jpki.token_info()
    assert (info.manufacturer, info.model, info.serial_number) == (
        "JPKI",
        "MyNumberCard",
        "0123456789ABCDEF",
    )
    assert info.flags == 0x40D and info.max_pin_len == 16 and info.min_pin_len == 4
    assert info.hardware_version == b"\x01\x00" and info.firmware_version == b"\x02\x01"
    assert info.as_dict()["free_private_memory"] == 4


@pytest.mark.parametrize(
    ("raw", "signing", "auth"),
    [("8F8F00", True, True), ("008F00", False, True), ("8F0000", True, False)],
)
def test_cert_availability(raw: str, signing: bool, auth: bool) -> None:
    jpki, _ = ap((h("00A4020C020008"), h("9000")), (h("00B0000010"), h(raw + "9000")))
    avail = jpki.cert_availability()
    assert (avail.signing, avail.auth) == (signing, auth)


def test_cert_availability_absent_is_unknown() -> None:
    jpki, _ = ap((h("00A4020C020008"), h("6A82")))
    avail = jpki.cert_availability()
    assert avail.raw is None and avail.signing is None


def test_auth_cert_6982_names_the_auth_pin() -> None:
    jpki, _ = ap((h("00A4020C02000A"), h("9000")), (None, h("6982")))
    with pytest.raises(SecurityStatusError, match="auth PIN"):
        jpki.read_certificate(CertSlot.AUTH)


def test_token_info_unknown_label() -> None:
    jpki, _ = ap((None, h("9000")), (None, b"SOMETHING ELSE  " + h("9000")))
    assert jpki.token_info().kind is TokenKind.UNKNOWN


@pytest.mark.parametrize(
    ("slot", "fid"),
    [(CertSlot.AUTH, 0x0A), (CertSlot.AUTH_CA, 0x0B), (CertSlot.SIGNING, 1), ("sign-ca", 2)],
)
def test_read_certificate_selects_the_right_ef(slot: CertSlot | str, fid: int) -> None:
    obj = der(1200, 2)
    card = FileCard({fid: obj + b"\xff" * 100})
    assert JpkiAp(card).read_certificate(slot) == obj


def test_unknown_key_or_slot_name_is_usage_error_and_sends_nothing() -> None:
    jpki, conn = ap()
    calls = (
        lambda: jpki.read_certificate("signing"),
        lambda: jpki.pin_status("pin"),
        lambda: jpki.verify_pin("auth-pin", Secret("1234")),
        lambda: jpki.sign("key", b"\x30"),
    )
    for call in calls:
        with pytest.raises(UsageError):
            call()
    assert conn.sent == [SELECT_JPKI[0]]


def test_signing_certificate_without_password_explains() -> None:
    jpki, _ = ap((h("00A4020C020001"), h("9000")), (None, h("6982")))
    with pytest.raises(SecurityStatusError, match="signing password"):
        jpki.read_certificate(CertSlot.SIGNING)


# --- PIN status ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sw", "tries", "blocked"),
    [
        ("63C3", 3, False),
        ("63C1", 1, False),
        ("63C0", 0, True),
        ("6984", 0, True),
        ("9000", None, False),
        ("6300", None, False),
    ],
)
def test_pin_status(sw: str, tries: int | None, blocked: bool) -> None:
    jpki, _ = ap(SELECT_AUTH_PIN, (EMPTY_VERIFY, h(sw)))
    status = jpki.pin_status(KeyKind.AUTH)
    assert status.tries_left == tries
    assert status.blocked is blocked
    assert status.max_tries == 3


def test_pin_status_other_sw_raises() -> None:
    jpki, _ = ap(SELECT_SIGN_PIN, (EMPTY_VERIFY, h("6A88")))
    with pytest.raises(JpkiError):
        jpki.pin_status("sign")


# --- VERIFY -------------------------------------------------------------------------------


def test_verify_auth_pin_exact_apdus() -> None:
    jpki, conn = ap(
        SELECT_AUTH_PIN, (EMPTY_VERIFY, h("63C3")), (h("002000800431323334"), h("9000"))
    )
    jpki.verify_pin(KeyKind.AUTH, Secret("1234"))
    assert conn.pairs == []


def test_signing_password_is_upper_cased() -> None:
    jpki, conn = ap(
        SELECT_SIGN_PIN,
        (EMPTY_VERIFY, h("63C5")),
        (h("002000800A") + b"JPKITEST01", h("9000")),
    )
    jpki.verify_pin("sign", Secret("jpkiTest01"))
    assert conn.pairs == []


@pytest.mark.parametrize(
    ("kind", "pin"),
    [
        (KeyKind.AUTH, "123"),
        (KeyKind.AUTH, "12345"),
        (KeyKind.AUTH, "12a4"),
        (KeyKind.AUTH, ""),
        (KeyKind.AUTH, "12 4"),
        (KeyKind.SIGNING, "ABC12"),
        (KeyKind.SIGNING, "A" * 17),
        (KeyKind.SIGNING, "ABC-123"),
        (KeyKind.SIGNING, "ABC 123"),
    ],
)
def test_format_errors_send_nothing(kind: KeyKind, pin: str) -> None:
    jpki, conn = ap()
    with pytest.raises(PinFormatError) as err:
        jpki.verify_pin(kind, Secret(pin))
    assert conn.sent == [SELECT_JPKI[0]]
    if pin:
        assert pin not in str(err.value)


def test_guard_refuses_at_one_try_and_sends_no_pin() -> None:
    jpki, conn = ap(SELECT_AUTH_PIN, (EMPTY_VERIFY, h("63C1")))
    with pytest.raises(PinGuardError) as err:
        jpki.verify_pin(KeyKind.AUTH, Secret("1234"))
    assert err.value.retries_left == 1
    assert all(b"1234" not in c for c in conn.sent)
    assert conn.pairs == []


def test_force_passes_the_guard_once() -> None:
    jpki, _ = ap(SELECT_AUTH_PIN, (EMPTY_VERIFY, h("63C1")), (h("002000800431323334"), h("63C0")))
    with pytest.raises(LastTryWrongPin) as err:
        jpki.verify_pin(KeyKind.AUTH, Secret("1234"), force=True)
    assert err.value.retries_left == 0
    assert isinstance(err.value, PinBlocked)


def test_blocked_pin_is_not_tried() -> None:
    jpki, conn = ap(SELECT_AUTH_PIN, (EMPTY_VERIFY, h("6984")))
    with pytest.raises(PinBlocked):
        jpki.verify_pin(KeyKind.AUTH, Secret("1234"), force=True)
    assert conn.pairs == [] and len(conn.sent) == 3


def test_wrong_pin_is_not_retried() -> None:
    jpki, conn = ap(SELECT_AUTH_PIN, (EMPTY_VERIFY, h("63C3")), (None, h("63C2")))
    with pytest.raises(WrongPin) as err:
        jpki.verify_pin(KeyKind.AUTH, Secret("9999"))
    assert err.value.retries_left == 2
    assert sum(1 for c in conn.sent if c[1] == 0x20 and len(c) > 4) == 1
    assert "9999" not in str(err.value)


def test_unknown_counter_still_verifies_once() -> None:
    jpki, conn = ap(SELECT_AUTH_PIN, (EMPTY_VERIFY, h("9000")), (None, h("9000")))
    jpki.verify_pin(KeyKind.AUTH, Secret("1234"))
    assert conn.pairs == []


def test_change_pin() -> None:
    jpki, conn = ap(
        SELECT_AUTH_PIN,
        (EMPTY_VERIFY, h("63C3")),
        (h("002000800431323334"), h("9000")),
        (h("002401800435363738"), h("9000")),
    )
    jpki.change_pin(KeyKind.AUTH, Secret("1234"), Secret("5678"))
    assert conn.pairs == []


def test_change_pin_checks_new_format_first() -> None:
    jpki, conn = ap()
    with pytest.raises(PinFormatError):
        jpki.change_pin(KeyKind.AUTH, Secret("1234"), Secret("56789"))
    assert conn.sent == [SELECT_JPKI[0]]


# --- signing ------------------------------------------------------------------------------


def test_sign_exact_apdu() -> None:
    di = digest_info_for(b"hello", "sha256")
    sig = b"\x5a" * 256
    jpki, _ = ap(
        (h("00A4020C020017"), h("9000")),
        (h("802A008033") + di + h("00"), sig + h("9000")),
    )
    assert jpki.sign(KeyKind.AUTH, di) == sig


def test_sign_with_signing_key_selects_001a_and_chains() -> None:
    di = digest_info_for(b"x", "sha512")
    jpki, conn = ap(
        (h("00A4020C02001A"), h("9000")),
        (None, h("6100")),
        (h("00C0000000"), b"\x01" * 256 + h("9000")),
    )
    assert jpki.sign_data("sign", b"x", "sha512") == b"\x01" * 256
    assert conn.sent[2][5:-1] == di


def test_sign_without_pin_explains() -> None:
    jpki, _ = ap((None, h("9000")), (None, h("6982")))
    with pytest.raises(SecurityStatusError, match="auth PIN"):
        jpki.sign(KeyKind.AUTH, b"\x30")


@pytest.mark.parametrize("size", [0, 246])
def test_sign_length_limits_send_nothing(size: int) -> None:
    jpki, conn = ap()
    with pytest.raises(UsageError):
        jpki.sign(KeyKind.AUTH, b"\x01" * size)
    assert len(conn.sent) == 1


@pytest.mark.parametrize(
    ("scheme", "size"),
    [(1, 255), (2, 32), (3, 1), (4, 32), (5, 200), (0, 245)],
)
def test_sign_schemes_put_p1_and_send_the_input(scheme: int, size: int) -> None:
    data = b"\x07" * size
    jpki, conn = ap((h("00A4020C020017"), h("9000")), (None, b"\x02" * 256 + h("9000")))
    assert jpki.sign(KeyKind.AUTH, data, SignScheme(scheme)) == b"\x02" * 256
    sent = conn.sent[2]
    assert sent[:4] == bytes([0x80, 0x2A, scheme, 0x80])
    assert sent[5 : 5 + size] == data


@pytest.mark.parametrize(
    ("scheme", "size"),
    [(1, 256), (2, 31), (2, 33), (3, 0), (4, 64), (5, 256), (0, 246)],
)
def test_sign_scheme_length_checks_send_nothing(scheme: int, size: int) -> None:
    jpki, conn = ap()
    with pytest.raises(UsageError):
        jpki.sign(KeyKind.AUTH, b"\x01" * size, SignScheme(scheme))
    assert len(conn.sent) == 1


def test_unknown_sign_scheme_is_usage_error() -> None:
    jpki, conn = ap()
    with pytest.raises(UsageError, match="P1=06"):
        jpki.sign(KeyKind.AUTH, b"\x01" * 32, 6)
    assert len(conn.sent) == 1


# --- DigestInfo ---------------------------------------------------------------------------


def test_digest_info_prefixes_match_rfc8017() -> None:
    assert PREFIXES[HashName.SHA256].hex() == "3031300d060960864801650304020105000420"
    assert PREFIXES[HashName.SHA1].hex() == "3021300906052b0e03021a05000414"
    assert PREFIXES[HashName.SHA384].hex() == "3041300d060960864801650304020205000430"
    assert PREFIXES[HashName.SHA512].hex() == "3051300d060960864801650304020305000440"


@pytest.mark.parametrize("name", ["sha1", "SHA-256", "sha384", "sha_512"])
def test_digest_info_round_trip(name: str) -> None:
    di = digest_info_for(b"data", name)
    hn, digest = parse_digest_info(di)
    assert digest == hashlib.new(hn.value, b"data").digest()


def test_digest_info_bad_inputs() -> None:
    with pytest.raises(UsageError):
        digest_info_for(b"", "md5")
    with pytest.raises(UsageError):
        build_digest_info("sha256", b"short")


@settings(max_examples=200)
@given(st.binary(max_size=100))
def test_parse_digest_info_garbage_is_signature_format_error(raw: bytes) -> None:
    try:
        name, digest = parse_digest_info(raw)
    except SignatureFormatError:
        return
    assert raw in (build_digest_info(name, digest), PREFIXES_NO_NULL[name] + digest)
