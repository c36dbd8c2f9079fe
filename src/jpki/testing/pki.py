"""Deterministic JPKI-like test PKI: CAs, signing/auth/OCSP certificates and CRLs from a seed.

Everything is a pure function of ``seed``, ``generation`` and ``now``: the same inputs give
byte-identical keys, certificates and CRLs (RSA PKCS#1 v1.5 signatures are deterministic).

* Keys: ``cryptography`` cannot seed key generation, so primes come from a SHA-256 counter-mode
  DRBG over ``seed|label|size`` plus Miller-Rabin. Generated keys are cached in memory and on
  disk (``$JPKI_TESTPKI_CACHE``, default ``~/.cache/jpki-testpki``); the cache only saves time.
* CA certificates mirror the real J-LIS roots (same extensions, validity dates and serial
  numbers per generation, one DN for every generation, different keys) with ``O=JPKI-TEST`` in
  the DN, so nothing here can be mistaken for a real card. Generation 2023: 2023-07-16 ..
  2033-07-15; 2019: 2019-09-14 .. 2029-09-14; 2015: 2015-10-20 .. 2025-10-19 (expired today,
  like the real one).
* Auth certificates carry what real ones do: EKU clientAuth, critical certificatePolicies with
  a CPS qualifier, an OCSP AIA (under a reserved ``.example`` host unless ``ocsp_url`` is given),
  AKI with key id + issuer DirName + serial, and a per-municipality CRL DP DirName shaped like
  ``…, OU=CRL Distribution Points, OU=Kanagawa-ken, CN=Yokohama-shi-Naka-ku CRLDP``.
* ``now`` defaults to 2026-01-01T00:00Z for generation 2023 (2022-01-01 for 2019, 2020-01-01
  for 2015). End-entity
  certificates run from ``now`` to the holder's 5th birthday after ``now`` (capped at the CA's
  expiry), so the defaults cover the real date (late 2026) and a few years beyond.
* Signing certificates use the production policy OID by default (``test_policy=True`` gives the
  test-card OID), so kind detection is exercised as for real cards; the DN marks them as test.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from jpki.cert import JpkiCertificate, era_for_date
from jpki.oid import BasicInfoOID, JpkiPolicyOID
from jpki.tlv import encode_length

__all__ = [
    "AUTH_POLICY_OID",
    "OTHERNAME_ORDER",
    "PHONE_SIGNING_POLICY_OID",
    "SIGNING_POLICY_OID",
    "TEST_SIGNING_POLICY_OID",
    "Issued",
    "TestPerson",
    "TestPki",
    "birth_date_code",
    "my_number_check_digit",
    "sample_person",
]

SIGNING_POLICY_OID = x509.ObjectIdentifier(JpkiPolicyOID.SIGNING)
TEST_SIGNING_POLICY_OID = x509.ObjectIdentifier(JpkiPolicyOID.SIGNING_TEST)
PHONE_SIGNING_POLICY_OID = x509.ObjectIdentifier(JpkiPolicyOID.PHONE_SIGNING)
AUTH_POLICY_OID = x509.ObjectIdentifier(JpkiPolicyOID.AUTHENTICATION)
OID_NAME = x509.ObjectIdentifier(BasicInfoOID.NAME)
OID_NAME_SUBSTITUTES = x509.ObjectIdentifier(BasicInfoOID.NAME_SUBSTITUTES)
OID_SEX = x509.ObjectIdentifier(BasicInfoOID.SEX)
OID_BIRTH_DATE = x509.ObjectIdentifier(BasicInfoOID.BIRTH_DATE)
OID_ADDRESS = x509.ObjectIdentifier(BasicInfoOID.ADDRESS)
OID_ADDRESS_SUBSTITUTES = x509.ObjectIdentifier(BasicInfoOID.ADDRESS_SUBSTITUTES)
# Order in which real cards list the basic-4 otherNames (spec §3).
OTHERNAME_ORDER = (
    OID_NAME,
    OID_BIRTH_DATE,
    OID_SEX,
    OID_ADDRESS,
    OID_NAME_SUBSTITUTES,
    OID_ADDRESS_SUBSTITUTES,
)

_ORG = "JPKI-TEST"
_AGENCY = "Japan Agency for Local Authority Information Systems"
_CA_OU = {"sign": "JPKI-TEST for digital signature", "auth": "JPKI-TEST for user authentication"}
_JLIS_SERVICE = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "公的個人認証サービス"),
    ]
)
# Validity of the real J-LIS roots per generation (end at 23:59:59 JST).
_GENERATIONS: dict[int, tuple[datetime, datetime, datetime]] = {
    # generation: (CA not_before, CA not_after, default "now")
    2015: (
        datetime(2015, 10, 20, 2, 40, 28, tzinfo=UTC),
        datetime(2025, 10, 19, 14, 59, 59, tzinfo=UTC),
        datetime(2020, 1, 1, tzinfo=UTC),
    ),
    2019: (
        datetime(2019, 9, 14, 23, 41, 56, tzinfo=UTC),
        datetime(2029, 9, 14, 14, 59, 59, tzinfo=UTC),
        datetime(2022, 1, 1, tzinfo=UTC),
    ),
    2023: (
        datetime(2023, 7, 16, 0, 50, 27, tzinfo=UTC),
        datetime(2033, 7, 15, 14, 59, 59, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
    ),
}
# The real roots' serial numbers per generation (the keys here are of course different).
_CA_SERIALS: dict[int, dict[str, int]] = {
    2015: {"sign": 0x01, "auth": 0x01},
    2019: {"sign": 0x0132C4AB, "auth": 0x0133C349},
    2023: {"sign": 0x067C6A21, "auth": 0x06D18006},
}
# Real auth certificates: critical policies with a CPS pointer, an OCSP AIA (spec §2). The AIA
# host is under a reserved name so nothing made here ever makes a client call J-LIS.
CPS_URI = "http://www.jpki.go.jp/cps.html"
DEFAULT_AUTH_OCSP_URL = "http://ocspauthnorm.jpki-test.example"
_JST_END_OF_DAY = time(14, 59, 59)  # 23:59:59 JST expressed in UTC
CaName = Literal["sign", "auth"]


# --- people --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestPerson:
    """A clearly fictional card holder. ``sex`` uses the certificate coding 1/2/3."""

    __test__ = False  # not a pytest test class

    name: str
    name_substitutes: str
    address: str
    address_substitutes: str
    birth_date: date
    sex: int
    my_number: str = field(repr=False)  # specific personal information, even when fictional
    prefecture: str
    municipality: str
    municipality_code: str = "13101"  # 全国地方公共団体コード without the check digit

    @property
    def birth_date_code(self) -> str:
        """The birth date as the certificate writes it: ``EYYYYMMDD`` (era digit first)."""
        return birth_date_code(self.birth_date)


def my_number_check_digit(first11: str) -> int:
    """Check digit of a My Number (個人番号) from its first 11 digits."""
    if len(first11) != 11 or not first11.isdigit():
        raise ValueError("need exactly 11 digits")
    weights = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    r = sum(int(c) * w for c, w in zip(first11, weights, strict=True)) % 11
    return 0 if r <= 1 else 11 - r


def _my_number(index: int) -> str:
    body = f"{int.from_bytes(hashlib.sha256(f'mynumber:{index}'.encode()).digest()[:8]):011d}"
    body = body[-11:]
    return body + str(my_number_check_digit(body))


def birth_date_code(d: date) -> str:
    """``EYYYYMMDD``: era digit (1 Meiji … 5 Reiwa, 0 unknown) then the Gregorian date."""
    return f"{int(era_for_date(d))}{d:%Y%m%d}"


def _flags(text: str, substituted: str = "") -> str:
    return "".join("1" if ch in substituted else "0" for ch in text)


def _person(
    name: str,
    address: str,
    birth: date,
    sex: int,
    index: int,
    pref: str,
    muni: str,
    substituted: str = "",
    code: str = "13101",
) -> TestPerson:
    return TestPerson(
        name=name,
        name_substitutes=_flags(name, substituted),
        address=address,
        address_substitutes=_flags(address, substituted),
        birth_date=birth,
        sex=sex,
        my_number=_my_number(index),
        prefecture=pref,
        municipality=muni,
        municipality_code=code,
    )


# (name, address, birth date, sex, prefecture, municipality, substituted characters, code).
# Prefecture and municipality are romanised the way real CRL DP names spell them
# ("OU=Kanagawa-ken, CN=Yokohama-shi-Naka-ku CRLDP").
_PEOPLE_DATA: tuple[tuple[str, str, date, int, str, str, str, str], ...] = (
    (
        "試験　太郎",
        "東京都千代田区試験町一丁目2番3号",
        date(1985, 4, 1),
        1,
        "Tokyo-to",
        "Chiyoda-ku",
        "",
        "13101",
    ),
    (
        "見本　花子",
        "大阪府大阪市北区見本町4-5-6",
        date(1992, 2, 29),
        2,
        "Osaka-fu",
        "Osaka-shi-Kita-ku",
        "",
        "27127",
    ),
    # U+20BB7 (outside the BMP) and U+FA11 stand in for substitute characters (代替文字).
    (
        "𠮷田　試験",
        "北海道札幌市中央区試験通﨑1丁目",
        date(1926, 12, 25),
        1,
        "Hokkaido",
        "Sapporo-shi-Chuo-ku",
        "𠮷﨑",
        "01101",
    ),
    (
        "検証　次郎",
        "福岡県福岡市博多区検証町7-8",
        date(2019, 4, 30),
        3,
        "Fukuoka-ken",
        "Fukuoka-shi-Hakata-ku",
        "",
        "40132",
    ),
    (
        "模擬　明子",
        "京都府京都市左京区模擬町9",
        date(1912, 7, 29),
        2,
        "Kyoto-fu",
        "Kyoto-shi-Sakyo-ku",
        "",
        "26103",
    ),
)
_PEOPLE = tuple(
    _person(name, addr, birth, sex, i, pref, muni, subst, code)
    for i, (name, addr, birth, sex, pref, muni, subst, code) in enumerate(_PEOPLE_DATA)
)

_FULLWIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")


def sample_person(index: int = 0) -> TestPerson:
    """A deterministic fictional person. 0..4 are hand-made (2 has substitute characters;
    birth dates cover Meiji..Heisei and era boundaries); larger indices are synthetic."""
    if index < 0:
        raise ValueError("index must be >= 0")
    if index < len(_PEOPLE):
        return _PEOPLE[index]
    base = _PEOPLE[index % 2]
    h = int.from_bytes(hashlib.sha256(f"person:{index}".encode()).digest()[:4], "big")
    birth = date(1950, 1, 1) + timedelta(days=h % 20000)
    name = base.name + str(index).translate(_FULLWIDTH_DIGITS)
    return _person(
        name,
        f"{base.address}-{index}",
        birth,
        1 + h % 2,
        index,
        base.prefecture,
        base.municipality,
        code=base.municipality_code,
    )


# --- deterministic RSA keys ----------------------------------------------------------------

_E = 65537
_SMALL_PRIMES = [p for p in range(3, 2000, 2) if all(p % d for d in range(3, math.isqrt(p) + 1, 2))]
_PRIMORIAL = math.prod(_SMALL_PRIMES)
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53)
_KEYS: dict[tuple[str, str, int], rsa.RSAPrivateKey] = {}


class _Drbg:
    """SHA-256 in counter mode: a reproducible byte stream from a seed."""

    def __init__(self, seed: bytes) -> None:
        self._seed = hashlib.sha256(seed).digest()
        self._counter = 0

    def bits(self, n: int) -> int:
        out = bytearray()
        while len(out) * 8 < n:
            out += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        return int.from_bytes(out, "big") >> (len(out) * 8 - n)


def _is_probable_prime(n: int) -> bool:
    if math.gcd(n, _PRIMORIAL) != 1:
        return n in _SMALL_PRIMES
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(drbg: _Drbg, bits: int) -> int:
    while True:
        # Top two bits set so p*q has exactly 2*bits bits; odd.
        cand = drbg.bits(bits) | (3 << (bits - 2)) | 1
        if (cand - 1) % _E and _is_probable_prime(cand):
            return cand


def _derive_key(seed: str, label: str, size: int) -> rsa.RSAPrivateKey:
    drbg = _Drbg(f"jpki-testpki|{seed}|{label}|{size}".encode())
    p = _prime(drbg, size // 2)
    q = _prime(drbg, size // 2)
    while q == p:
        q = _prime(drbg, size // 2)
    p, q = max(p, q), min(p, q)
    d = pow(_E, -1, (p - 1) * (q - 1) // math.gcd(p - 1, q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(_E, p * q),
    )
    return numbers.private_key()


def _cache_dir() -> Path:
    env = os.environ.get("JPKI_TESTPKI_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "jpki-testpki"


def deterministic_key(seed: str, label: str, size: int = 2048) -> rsa.RSAPrivateKey:
    """The RSA key for ``seed`` + ``label`` (cached in memory and on disk)."""
    ident = (seed, label, size)
    key = _KEYS.get(ident)
    if key is not None:
        return key
    digest = hashlib.sha256(f"{seed}\0{label}\0{size}".encode()).hexdigest()
    path = _cache_dir() / f"{digest}.der"
    try:
        loaded = serialization.load_der_private_key(path.read_bytes(), None)
        if isinstance(loaded, rsa.RSAPrivateKey) and loaded.key_size == size:
            key = loaded
    except (OSError, ValueError):
        key = None
    if key is None:
        key = _derive_key(seed, label, size)
        _store(path, key)
    _KEYS[ident] = key
    return key


def _store(path: Path, key: rsa.RSAPrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic: parallel test workers never see half a key
    except OSError:
        pass  # the cache is an optimisation only


# --- certificates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    """A key and the certificate issued for it."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        """The certificate as DER."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        """The certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def jpki(self) -> JpkiCertificate:
        """The certificate as a ``jpki.cert.JpkiCertificate``."""
        return JpkiCertificate.from_cryptography(self.cert)


def _utf8_othername(oid: x509.ObjectIdentifier, text: str) -> x509.OtherName:
    raw = text.encode("utf-8")
    # cryptography adds the [0] EXPLICIT wrapper; the value is the DER UTF8String.
    return x509.OtherName(oid, b"\x0c" + encode_length(len(raw)) + raw)


def _fifth_birthday_after(birth: date, when: datetime) -> datetime:
    """End of the 5th birthday after ``when`` (JST end of day, in UTC)."""
    issued = when.date()
    # The first birthday after issue falls this year or next; the 5th is four years later.
    year = issued.year + 4 + (1 if (birth.month, birth.day) <= (issued.month, issued.day) else 0)
    day = 28 if (birth.month, birth.day) == (2, 29) else birth.day
    return datetime.combine(date(year, birth.month, day), _JST_END_OF_DAY, tzinfo=UTC)


class TestPki:
    """A deterministic JPKI-like PKI: one signing CA and one auth CA per ``generation``."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        seed: str = "jpki-test",
        *,
        generation: int = 2023,
        now: datetime | None = None,
        key_size: int = 2048,
    ) -> None:
        if generation not in _GENERATIONS:
            raise ValueError(f"generation must be one of {sorted(_GENERATIONS)}")
        ca_from, ca_to, default_now = _GENERATIONS[generation]
        if now is not None and now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.seed = seed
        self.generation = generation
        self.now = (now or default_now).astimezone(UTC)
        self.key_size = key_size
        self.ca_not_before = ca_from
        self.ca_not_after = ca_to

    # keys and names

    def key(self, label: str) -> rsa.RSAPrivateKey:
        """Deterministic RSA key for ``label`` under this PKI's seed."""
        return deterministic_key(self.seed, label, self.key_size)

    @staticmethod
    def ca_name(ca: CaName = "sign") -> x509.Name:
        """The test CA's name for ``ca`` (``"sign"`` or ``"auth"``)."""
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _CA_OU[_check_ca(ca)]),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _AGENCY),
            ]
        )

    def crl_dp_name(self, person: TestPerson, ca: CaName = "sign") -> x509.Name:
        """Per-municipality CRL distribution point directoryName."""
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _CA_OU[_check_ca(ca)]),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "CRL Distribution Points"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, person.prefecture),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{person.municipality} CRLDP"),
            ]
        )

    def _serial(self, *parts: object) -> int:
        text = "|".join(str(p) for p in (self.seed, self.generation, *parts))
        value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
        return value or 1

    def _opaque_id(self, kind: str, label: str) -> str:
        digest = hashlib.sha256(f"{self.seed}|{kind}|{label}".encode()).hexdigest().upper()
        return digest[:25]

    # CAs

    @cached_property
    def sign_ca(self) -> Issued:
        """The signing CA (self-signed, made on first use)."""
        return self._make_ca("sign")

    @cached_property
    def auth_ca(self) -> Issued:
        """The authentication CA (self-signed, made on first use)."""
        return self._make_ca("auth")

    def ca(self, ca: CaName = "sign") -> Issued:
        """The signing or authentication CA, by name (``"sign"`` or ``"auth"``)."""
        return self.sign_ca if _check_ca(ca) == "sign" else self.auth_ca

    def _make_ca(self, ca: CaName) -> Issued:
        key = self.key(f"ca-{ca}-{self.generation}")
        name = self.ca_name(ca)
        dp = x509.DistributionPoint([x509.DirectoryName(name)], None, None, None)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(_CA_SERIALS[self.generation][ca])
            .not_valid_before(self.ca_not_before)
            .not_valid_after(self.ca_not_after)
            .add_extension(_ku(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.DirectoryName(_JLIS_SERVICE)]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.CRLDistributionPoints([dp]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return Issued(key, cert)

    # end entities

    def _ee_builder(
        self,
        ca: CaName,
        key: rsa.RSAPrivateKey,
        subject: x509.Name,
        not_before: datetime,
        not_after: datetime,
        serial: int,
    ) -> x509.CertificateBuilder:
        issuer = self.ca(ca)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(_full_aki(issuer.cert), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        )

    def _validity(
        self, person: TestPerson | None, not_before: datetime | None, not_after: datetime | None
    ) -> tuple[datetime, datetime]:
        start = not_before or self.now
        if not_after is None:
            if person is not None:
                not_after = _fifth_birthday_after(person.birth_date, start)
            else:
                not_after = start + timedelta(days=5 * 365)
            not_after = min(not_after, self.ca_not_after)
        return start, not_after

    def issue_signing(
        self,
        person: TestPerson | None = None,
        *,
        label: str | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        serial: int | None = None,
        test_policy: bool = False,
        phone: bool = False,
        ocsp_url: str | None = None,
    ) -> Issued:
        """A signing certificate carrying ``person``'s basic 4 information (default person 0)."""
        person = person or sample_person(0)
        label = label or f"sign-{person.my_number}"
        key = self.key(label)
        start, end = self._validity(person, not_before, not_after)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.LOCALITY_NAME, person.prefecture),
                x509.NameAttribute(NameOID.LOCALITY_NAME, person.municipality),
                x509.NameAttribute(NameOID.COMMON_NAME, self._opaque_id("sign", label)),
            ]
        )
        values = {
            OID_NAME: person.name,
            OID_NAME_SUBSTITUTES: person.name_substitutes,
            OID_SEX: str(person.sex),
            OID_BIRTH_DATE: person.birth_date_code,
            OID_ADDRESS: person.address,
            OID_ADDRESS_SUBSTITUTES: person.address_substitutes,
        }
        san = x509.SubjectAlternativeName([_utf8_othername(o, values[o]) for o in OTHERNAME_ORDER])
        if phone:
            policy = PHONE_SIGNING_POLICY_OID
        else:
            policy = TEST_SIGNING_POLICY_OID if test_policy else SIGNING_POLICY_OID
        builder = (
            self._ee_builder(
                "sign", key, subject, start, end, serial or self._serial("sign", label, start)
            )
            .add_extension(_ku(digital_signature=True, content_commitment=True), critical=True)
            .add_extension(san, critical=False)
            .add_extension(_policies(policy), critical=False)
        )
        builder = self._common_ee(builder, person, "sign", ocsp_url)
        return Issued(key, builder.sign(self.sign_ca.key, hashes.SHA256()))

    def issue_auth(
        self,
        *,
        label: str = "auth",
        person: TestPerson | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        serial: int | None = None,
        ocsp_url: str | None = None,
    ) -> Issued:
        """A user-authentication certificate (opaque CN, no personal data).

        ``person`` only chooses the CRL DP municipality and the validity end (default person 0).
        """
        person = person or sample_person(0)
        key = self.key(label)
        start, end = self._validity(person, not_before, not_after)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.COMMON_NAME, self._opaque_id("auth", label)),
            ]
        )
        builder = (
            self._ee_builder(
                "auth", key, subject, start, end, serial or self._serial("auth", label, start)
            )
            .add_extension(_ku(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(_policies(AUTH_POLICY_OID, cps=CPS_URI), critical=True)
        )
        builder = self._common_ee(builder, person, "auth", ocsp_url or DEFAULT_AUTH_OCSP_URL)
        return Issued(key, builder.sign(self.auth_ca.key, hashes.SHA256()))

    def _common_ee(
        self,
        builder: x509.CertificateBuilder,
        person: TestPerson,
        ca: CaName,
        ocsp_url: str | None,
    ) -> x509.CertificateBuilder:
        dp = x509.DistributionPoint(
            [x509.DirectoryName(self.crl_dp_name(person, ca))], None, None, None
        )
        builder = builder.add_extension(
            x509.IssuerAlternativeName([x509.DirectoryName(_JLIS_SERVICE)]), critical=False
        ).add_extension(x509.CRLDistributionPoints([dp]), critical=False)
        if ocsp_url:
            aia = x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(ocsp_url),
                    )
                ]
            )
            builder = builder.add_extension(aia, critical=False)
        return builder

    def issue_ocsp_responder(
        self,
        ca: CaName = "sign",
        *,
        label: str | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> Issued:
        """An OCSP responder certificate (id-kp-OCSPSigning, ocsp-nocheck) issued by ``ca``."""
        label = label or f"ocsp-{_check_ca(ca)}-{self.generation}"
        key = self.key(label)
        start = not_before or self.now
        end = not_after or min(start + timedelta(days=365), self.ca_not_after)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _CA_OU[ca]),
                x509.NameAttribute(NameOID.COMMON_NAME, "OCSP Responder"),
            ]
        )
        cert = (
            self._ee_builder(ca, key, subject, start, end, self._serial("ocsp", label, start))
            .add_extension(_ku(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .sign(self.ca(ca).key, hashes.SHA256())
        )
        return Issued(key, cert)

    # CRLs

    def make_crl(
        self,
        ca: CaName = "sign",
        entries: Sequence[tuple[int, x509.ReasonFlags | None, datetime]] = (),
        *,
        this_update: datetime | None = None,
        next_update: datetime | None = None,
        number: int = 1,
        idp_name: x509.Name | None = None,
    ) -> bytes:
        """A DER CRL signed (sha256WithRSA) by ``ca``: (serial, reason or None, revoked at)."""
        issuer = self.ca(ca)
        this_update = this_update or self.now
        next_update = next_update or this_update + timedelta(days=1)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.cert.subject)
            .last_update(this_update)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False,
            )
        )
        if idp_name is not None:
            idp = x509.IssuingDistributionPoint(
                full_name=[x509.DirectoryName(idp_name)],
                relative_name=None,
                only_contains_user_certs=False,
                only_contains_ca_certs=False,
                only_some_reasons=None,
                indirect_crl=False,
                only_contains_attribute_certs=False,
            )
            builder = builder.add_extension(idp, critical=True)
        for serial, reason, revoked_at in entries:
            rb = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at)
            if reason is not None:
                rb = rb.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(rb.build())
        crl = builder.sign(issuer.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.DER)


def _check_ca(ca: str) -> CaName:
    if ca == "sign":
        return "sign"
    if ca == "auth":
        return "auth"
    raise ValueError(f"ca must be 'sign' or 'auth', not {ca!r}")


def _policies(oid: x509.ObjectIdentifier, *, cps: str | None = None) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(oid, [cps] if cps else None)])


def _full_aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """AKI as on real JPKI certificates: key id, issuer DirName and the issuer's serial."""
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier(
        key_identifier=ski.digest,
        authority_cert_issuer=[x509.DirectoryName(issuer.issuer)],
        authority_cert_serial_number=issuer.serial_number,
    )


def _ku(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )
