"""Conformance suite: checks any My Number card, simulator or bridge must pass.

``run_conformance(conn)`` runs every check over one ``Connection`` and returns a
``ConformanceReport``; each check has a status (pass/fail/skip), a one-line detail and the APDU
transcript it caused (commands with PIN data blanked by ``redact_command``; responses as status
word and length only, since answers can carry personal data).

PIN safety: without ``with_pin`` no VERIFY with data is ever sent (the recording connection
refuses it); with it, the PIN checks are skipped unless the card reports at least two tries
left, exactly one VERIFY is sent per PIN, and a wrong PIN ends the PIN checks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.apdu import SECRET_INS, SW, CommandApdu, ResponseApdu, redact_command
from jpki.card.constants import CONTACT_ATR, TOKEN_LABELS, Aid, JpkiFile, TextFile, VisualFile
from jpki.card.cvc import IntegrityStatus, check_cvc, pkcs1_payload_ok, pkcs1_sha256_ok
from jpki.card.jpki_ap import CertSlot, JpkiAp, KeyKind
from jpki.card.protocol import CardProtocol
from jpki.cert import CertKind, JpkiCertificate
from jpki.checks import CheckFailed, CheckSkipped, run_check
from jpki.checks import CheckStatus as CheckStatus
from jpki.digestinfo import digest_info_for
from jpki.errors import CardError, JpkiError, TlvError, TransportError
from jpki.secret import Secret
from jpki.tlv import der_total_length
from jpki.transport.base import Connection
from jpki.trust.cvca import CvcaKey, CvcaKeyring

#: An AID no JPKI card has (the JPKI AID with its last byte changed).
UNKNOWN_AID = bytes.fromhex("D392F000260100000099")
#: A file id no JPKI AP holds (all of its FIDs are <= 001E).
UNKNOWN_FID = 0x0FFF
#: An INS ISO 7816-4 does not define, and a CLA value outside the interindustry/proprietary
#: classes the card uses.
UNKNOWN_INS = 0x5A
UNKNOWN_CLA = 0xA0


@dataclass(frozen=True)
class Exchange:
    """One APDU of a transcript: the command for logs, the response's SW and length."""

    command: str
    sw: str
    response_length: int

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: command, status word and response length."""
        return {"command": self.command, "sw": self.sw, "response_length": self.response_length}

    def __str__(self) -> str:
        return f">> {self.command}\n<< {self.sw} ({self.response_length} data bytes)"


@dataclass(frozen=True)
class CheckResult:
    """One check's name, title, status, detail and the APDUs it exchanged."""

    name: str
    title: str
    status: CheckStatus
    detail: str
    transcript: tuple[Exchange, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: name, title, status, detail and the transcript."""
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "detail": self.detail,
            "transcript": [e.as_dict() for e in self.transcript],
        }


@dataclass(frozen=True)
class ConformanceReport:
    """Every check run against one card (``as_dict`` is the ``--json`` report)."""

    atr: bytes
    with_pin: bool
    checks: tuple[CheckResult, ...]
    #: Set when a transport error stopped the run (the card went away): the CLI exits 4.
    aborted: str | None = None

    def count(self, status: CheckStatus) -> int:
        """How many checks ended with ``status``."""
        return sum(1 for c in self.checks if c.status is status)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        """The checks that failed, in run order."""
        return tuple(c for c in self.checks if c.status is CheckStatus.FAIL)

    @property
    def ok(self) -> bool:
        """True when no check failed and the run was not aborted."""
        return not self.failed and self.aborted is None

    def check(self, name: str) -> CheckResult:
        """The result of the check named ``name`` (``KeyError`` when there is none)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: verdict, ATR, summary counts and every check."""
        return {
            "ok": self.ok,
            "atr": self.atr.hex().upper(),
            "with_pin": self.with_pin,
            "aborted": self.aborted,
            "summary": {s.value: self.count(s) for s in CheckStatus},
            "checks": [c.as_dict() for c in self.checks],
        }


# --- recording -------------------------------------------------------------------------------


class PinSpendRefused(JpkiError):
    """The suite tried to send PIN data while PIN checks were not allowed (a suite bug)."""


class RecordingConnection(Connection):
    """Wraps a connection: records every exchange; refuses PIN data unless ``allow_pin``."""

    def __init__(self, inner: Connection) -> None:
        self.inner = inner
        self.allow_pin = False
        self.log: list[Exchange] = []

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def transmit(self, command: bytes) -> bytes:
        # The inner connection logs the exchange (PIN data blanked); logging here too would
        # print every APDU twice in `jpki -vv`.
        return self._transmit(command)

    def _transmit(self, command: bytes) -> bytes:
        # Belt and braces: a VERIFY/CHANGE with data could spend a try; only the PIN checks
        # may send one, and they switch ``allow_pin`` on for exactly that exchange.
        if len(command) > 5 and command[1] in SECRET_INS and not self.allow_pin:
            raise PinSpendRefused("refused to send PIN data outside the PIN checks")
        text = redact_command(command)
        try:
            response = self.inner.transmit(command)
        except TransportError as exc:
            self.log.append(Exchange(text, f"no answer: {exc}", 0))
            raise
        sw = response[-2:].hex().upper() if len(response) >= 2 else "(none)"
        self.log.append(Exchange(text, sw, max(0, len(response) - 2)))
        return response

    def reset(self) -> bytes:
        return self.inner.reset()

    def close(self) -> None:
        self.inner.close()


# --- the suite -------------------------------------------------------------------------------


class _Fail(CheckFailed):
    """A check's verdict: failed, with a reason."""


class _Skip(CheckSkipped):
    """A check's verdict: not applicable here, with a reason."""


def _expect_sw(response: ResponseApdu, *expected: int, what: str) -> None:
    if response.sw not in expected:
        want = " or ".join(f"{e:04X}" for e in expected)
        raise _Fail(f"{what}: expected {want}, card answered {response.sw:04X}")


@dataclass
class _Suite:
    conn: RecordingConnection
    with_pin: bool
    pin: Secret | None
    sign_pin: Secret | None
    results: list[CheckResult] = field(default_factory=list)
    certs: dict[CertSlot, JpkiCertificate] = field(default_factory=dict)
    aborted: str | None = None
    auth_verified: bool = False
    keyring: CvcaKeyring = field(default_factory=CvcaKeyring)

    def __post_init__(self) -> None:
        self.proto = CardProtocol(self.conn)

    # plumbing

    def run(self, name: str, title: str, fn: Callable[[], str]) -> CheckResult:
        if self.aborted is not None:
            result = CheckResult(name, title, CheckStatus.SKIP, "not run: the card went away")
            self.results.append(result)
            return result
        start = len(self.conn.log)
        outcome = run_check(fn)
        if outcome.card_gone is not None:
            self.aborted = outcome.card_gone
        result = CheckResult(
            name, title, outcome.status, outcome.detail, tuple(self.conn.log[start:])
        )
        self.results.append(result)
        return result

    def send(self, apdu: CommandApdu) -> ResponseApdu:
        """One raw exchange (no GET RESPONSE / re-send: the check sees what the card says)."""
        raw = self.conn.transmit(apdu.encode())
        if len(raw) < 2:
            raise CardError(f"card answer of {len(raw)} bytes has no status word")
        return ResponseApdu.decode(raw)

    def select_df(self, aid: bytes) -> ResponseApdu:
        return self.send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, aid))

    def select_ef(self, fid: int) -> ResponseApdu:
        return self.send(CommandApdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big")))

    def read(self, offset: int, le: int) -> ResponseApdu:
        return self.send(CommandApdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=le))

    def in_app(self, aid: bytes, what: str) -> None:
        _expect_sw(self.select_df(aid), SW.OK, what=f"SELECT {what}")

    @contextmanager
    def pin_allowed(self) -> Iterator[None]:
        self.conn.allow_pin = True
        try:
            yield
        finally:
            self.conn.allow_pin = False

    # checks without a PIN

    def atr(self) -> str:
        atr = self.conn.atr
        if not atr:
            raise _Fail("the reader reports no ATR")
        if atr == CONTACT_ATR:
            return f"{atr.hex().upper()} (the contact ATR of the spec)"
        # Contactless readers synthesise their own ATR: detect by SELECT, never by ATR.
        return f"{atr.hex().upper()} (not the contact ATR; fine for contactless readers)"

    def select_app(self, aid: Aid) -> Callable[[], str]:
        def check() -> str:
            _expect_sw(self.select_df(aid.value), SW.OK, what=f"SELECT {aid.name}")
            return "9000"

        return check

    def select_unknown_aid(self) -> str:
        _expect_sw(self.select_df(UNKNOWN_AID), SW.FILE_NOT_FOUND, what="SELECT unknown AID")
        return "6A82"

    def token_info(self) -> str:
        self.in_app(Aid.JPKI.value, "JPKI AP")
        _expect_sw(self.select_ef(JpkiFile.TOKEN_INFO), SW.OK, what="SELECT EF 0006")
        r = self.read(0, 32)
        _expect_sw(r, SW.OK, SW.END_OF_FILE, what="READ EF 0006")
        try:
            label = r.data[:32].decode("ascii").rstrip(" \x00")
        except UnicodeDecodeError:
            raise _Fail("token label is not ASCII") from None
        if label not in TOKEN_LABELS:
            raise _Fail(f"unknown token label {label!r} (known: {', '.join(TOKEN_LABELS)})")
        return f"label {label} ({TOKEN_LABELS[label].value})"

    def read_cert(self, slot: CertSlot) -> Callable[[], str]:
        def check() -> str:
            self.in_app(Aid.JPKI.value, "JPKI AP")
            _expect_sw(self.select_ef(slot.fid), SW.OK, what=f"SELECT EF {slot.fid:04X}")
            return self._read_der_consistently(slot)

        return check

    def _read_der_consistently(self, slot: CertSlot) -> str:
        # As OpenSC does: 4 bytes first, then 256-byte chunks up to the size the header gives.
        head = self.read(0, 4)
        _expect_sw(head, SW.OK, what="READ 4 bytes")
        if len(head.data) != 4:
            raise _Fail(f"asked for 4 bytes, got {len(head.data)}")
        data = bytearray(head.data)
        try:
            total = der_total_length(bytes(data))
            while total is None and len(data) < 16:
                more = self.read(len(data), 1)
                _expect_sw(more, SW.OK, what="READ header byte")
                data += more.data
                total = der_total_length(bytes(data))
        except TlvError as exc:
            raise _Fail(f"file does not start with a DER header: {exc}") from None
        if total is None:
            raise _Fail("DER header longer than 16 bytes")
        while len(data) < total:
            want = min(256, total - len(data))
            r = self.read(len(data), want)
            _expect_sw(r, SW.OK, what=f"READ at {len(data)}")
            if len(r.data) != want:
                raise _Fail(f"READ at {len(data)} of {want} bytes returned {len(r.data)}")
            data += r.data
        try:
            cert = JpkiCertificate.load(bytes(data[:total]))
        except JpkiError as exc:
            raise _Fail(
                f"{total} bytes as the DER header says, but not a certificate: {exc}"
            ) from None
        self.certs[slot] = cert
        return f"{total} bytes, DER header and certificate agree"

    def cert_kinds(self) -> str:
        expected = {
            CertSlot.AUTH: (CertKind.AUTHENTICATION, CertKind.PHONE_AUTHENTICATION),
            CertSlot.AUTH_CA: (CertKind.AUTHENTICATION_CA,),
            CertSlot.SIGNING_CA: (CertKind.SIGNING_CA,),
            CertSlot.SIGNING: (CertKind.SIGNING, CertKind.PHONE_SIGNING),
        }
        seen = [s for s in expected if s in self.certs]
        if not seen:
            raise _Skip("no certificate could be read")
        problems = []
        for slot in seen:
            kind = self.certs[slot].kind
            if kind not in expected[slot]:
                problems.append(f"EF {slot.fid:04X} ({slot.value}) holds a {kind.value} cert")
        for leaf, ca in (
            (CertSlot.AUTH, CertSlot.AUTH_CA),
            (CertSlot.SIGNING, CertSlot.SIGNING_CA),
        ):
            if leaf in self.certs and ca in self.certs:
                why = _issued_by(self.certs[leaf], self.certs[ca])
                if why:
                    problems.append(f"{leaf.value} certificate not issued by {ca.value}: {why}")
        if problems:
            raise _Fail("; ".join(problems))
        return ", ".join(f"{s.value}={self.certs[s].kind.value}" for s in seen)

    def sign_cert_protected(self) -> str:
        self.in_app(Aid.JPKI.value, "JPKI AP")
        _expect_sw(self.select_ef(JpkiFile.SIGNING_CERT), SW.OK, what="SELECT EF 0001")
        r = self.read(0, 4)
        _expect_sw(r, SW.SECURITY_STATUS_NOT_SATISFIED, what="READ signing certificate")
        if r.data:
            raise _Fail("6982 came with data")
        return "6982 without the signing password"

    def pin_status(self, kind: KeyKind) -> Callable[[], str]:
        def check() -> str:
            self.in_app(Aid.JPKI.value, "JPKI AP")
            first = self._empty_verify(kind.pin_fid, kind.max_tries, kind.pin_name)
            second = self._empty_verify(kind.pin_fid, kind.max_tries, kind.pin_name)
            if first != second:
                raise _Fail(f"empty VERIFY changed the counter: {first} then {second} tries")
            return f"{first} of {kind.max_tries} tries left; the empty VERIFY spent none"

        return check

    def _empty_verify(self, fid: int, max_tries: int, name: str) -> int:
        _expect_sw(self.select_ef(fid), SW.OK, what=f"SELECT EF {fid:04X}")
        r = self.send(CommandApdu(0x00, 0x20, 0x00, 0x80))
        if r.sw == SW.REFERENCE_DATA_BLOCKED:
            return 0
        if r.sw1 != 0x63 or r.sw2 & 0xF0 != 0xC0:
            raise _Fail(f"empty VERIFY of the {name}: expected 63Cx, card answered {r.sw:04X}")
        tries = r.sw2 & 0x0F
        if tries > max_tries:
            raise _Fail(f"{name}: {tries} tries left is more than the maximum {max_tries}")
        return tries

    def text_pin_status(self) -> str:
        self.in_app(Aid.TEXT.value, "text AP")
        tries = self._empty_verify(TextFile.PIN, 3, "input-support PIN")
        return f"{tries} of 3 tries left"

    def key_ef_unreadable(self) -> str:
        self.in_app(Aid.JPKI.value, "JPKI AP")
        for fid in (JpkiFile.AUTH_KEY, JpkiFile.SIGNING_KEY):
            _expect_sw(self.select_ef(fid), SW.OK, what=f"SELECT key EF {fid:04X}")
            r = self.read(0, 1)
            _expect_sw(r, SW.COMMAND_INCOMPATIBLE_WITH_FILE, what=f"READ key EF {fid:04X}")
        return "6981 for both private key EFs"

    def sign_without_pin(self) -> str:
        self.in_app(Aid.JPKI.value, "JPKI AP")
        for key in (KeyKind.AUTH, KeyKind.SIGNING):
            _expect_sw(self.select_ef(key.key_fid), SW.OK, what=f"SELECT key EF {key.key_fid:04X}")
            di = digest_info_for(b"jpki conformance", "sha256")
            r = self.send(CommandApdu(0x80, 0x2A, 0x00, 0x80, di, le=256))
            _expect_sw(r, SW.SECURITY_STATUS_NOT_SATISFIED, what=f"sign with {key.value} key")
        return "6982 for both keys"

    def protected_card_info(self) -> str:
        for aid, fid, what in (
            (Aid.TEXT, TextFile.MY_NUMBER, "text AP My Number (EF 0001)"),
            (Aid.TEXT, TextFile.BASIC_INFO, "text AP basic information (EF 0002)"),
            (Aid.VISUAL, VisualFile.SURFACE, "visual AP card surface (EF 0002)"),
        ):
            self.in_app(aid.value, aid.name)
            _expect_sw(self.select_ef(fid), SW.OK, what=f"SELECT {what}")
            r = self.read(0, 1)
            _expect_sw(r, SW.SECURITY_STATUS_NOT_SATISFIED, what=f"READ {what}")
            if r.data:
                raise _Fail(f"READ {what}: data came with 6982")
        return "6982 for My Number, basic information and card surface"

    def unknown_ins(self) -> str:
        self.in_app(Aid.JPKI.value, "JPKI AP")
        r = self.send(CommandApdu(0x00, UNKNOWN_INS, 0x00, 0x00))
        _expect_sw(r, SW.INS_NOT_SUPPORTED, what=f"INS {UNKNOWN_INS:02X}")
        return "6D00"

    def unknown_cla(self) -> str:
        self.in_app(Aid.JPKI.value, "JPKI AP")
        r = self.send(CommandApdu(UNKNOWN_CLA, 0xB0, 0x00, 0x00, le=1))
        _expect_sw(r, SW.CLA_NOT_SUPPORTED, what=f"CLA {UNKNOWN_CLA:02X}")
        return "6E00"

    def unknown_file(self) -> str:
        self.in_app(Aid.JPKI.value, "JPKI AP")
        _expect_sw(self.select_ef(UNKNOWN_FID), SW.FILE_NOT_FOUND, what="SELECT unknown EF")
        return "6A82"

    def read_past_end(self) -> str:
        cert = self.certs.get(CertSlot.AUTH_CA)
        if cert is None:
            raise _Skip("the auth CA certificate could not be read (its size is needed)")
        size = len(cert.der)
        self.in_app(Aid.JPKI.value, "JPKI AP")
        _expect_sw(self.select_ef(JpkiFile.AUTH_CA_CERT), SW.OK, what="SELECT EF 000B")
        tail = self.read(size - 1, 256)
        # Spec: a short tail comes back with 9000 (6282 is the ISO warning some cards use).
        _expect_sw(tail, SW.OK, SW.END_OF_FILE, what=f"READ the last byte (offset {size - 1})")
        if len(tail.data) < 1:
            raise _Fail("READ of the last byte returned no data")
        # A real EF may be allocated larger than the certificate in it (padding), so "past the
        # end" is probed at the largest 15-bit offset, beyond any JPKI file.
        r = self.read(0x7FFF, 1)
        _expect_sw(r, SW.WRONG_P1P2, what=f"READ at offset 7FFF (certificate of {size} bytes)")
        return f"tail {tail.sw:04X}; past the end 6B00"

    # checks with a PIN

    def pin_guard(self, kind: KeyKind, secret: Secret | None) -> None:
        if not self.with_pin:
            raise _Skip("needs --with-pin")
        if secret is None:
            raise _Skip(f"no {kind.pin_name} given")
        self.in_app(Aid.JPKI.value, "JPKI AP")
        tries = self._empty_verify(kind.pin_fid, kind.max_tries, kind.pin_name)
        if tries <= 1:
            # Never risk blocking: a wrong PIN now would block it (or it already is).
            raise _Skip(f"{kind.pin_name} has {tries} tries left; PIN checks need at least 2")

    def verify(self, kind: KeyKind, secret: Secret | None) -> Callable[[], str]:
        def check() -> str:
            if any(
                r.name.startswith("verify_") and r.status is CheckStatus.FAIL for r in self.results
            ):
                # The operator may have mistyped every PIN alike: one wrong try is enough.
                raise _Skip("an earlier PIN VERIFY failed: the PIN checks stop there")
            self.pin_guard(kind, secret)
            assert secret is not None
            ap = JpkiAp(self.proto, select=False)
            with self.pin_allowed():
                # jpki_ap checks the format, reads the counter, guards, then one VERIFY.
                ap.verify_pin(kind, secret)
            after = self._empty_verify(kind.pin_fid, kind.max_tries, kind.pin_name)
            if after != kind.max_tries:
                raise _Fail(f"after a good VERIFY the counter is {after}, not {kind.max_tries}")
            return f"accepted; counter back to {after}"

        return check

    def sign_round_trip(self, kind: KeyKind, slot: CertSlot) -> Callable[[], str]:
        def check() -> str:
            verified = self.check_passed(f"verify_{kind.value}_pin")
            if not verified:
                raise _Skip(f"the {kind.pin_name} was not verified")
            cert = self.certs.get(slot)
            if cert is None:
                raise _Skip(f"the {slot.value} certificate could not be read")
            key = cert.public_key
            if not isinstance(key, rsa.RSAPublicKey):
                raise _Fail(f"the {slot.value} certificate does not hold an RSA key")
            ap = JpkiAp(self.proto, select=False)
            done = []
            for alg, h in (
                ("sha256", hashes.SHA256()),
                ("sha1", hashes.SHA1()),  # noqa: S303 - cards in the wild are asked for it
                ("sha384", hashes.SHA384()),
                ("sha512", hashes.SHA512()),
            ):
                message = f"jpki conformance {kind.value} {alg}".encode()
                signature = ap.sign_data(kind, message, alg)
                if len(signature) != key.key_size // 8:
                    raise _Fail(f"{alg}: signature of {len(signature)} bytes")
                try:
                    key.verify(signature, message, padding.PKCS1v15(), h)
                except InvalidSignature:
                    raise _Fail(f"{alg}: signature does not verify with the certificate") from None
                done.append(alg)
            return f"signatures ({', '.join(done)}) verify with the {slot.value} certificate"

        return check

    def read_signing_cert(self) -> str:
        if not self.check_passed("verify_sign_pin"):
            raise _Skip("the signing password was not verified")
        # Same DF: the verified password still holds (SELECT EF keeps security state).
        _expect_sw(self.select_ef(JpkiFile.SIGNING_CERT), SW.OK, what="SELECT EF 0001")
        return self._read_der_consistently(CertSlot.SIGNING)

    def security_cleared_by_df_select(self) -> str:
        if not self.check_passed("verify_auth_pin"):
            raise _Skip("the auth PIN was not verified")
        self.in_app(Aid.TEXT.value, "text AP")
        self.in_app(Aid.JPKI.value, "JPKI AP")
        _expect_sw(self.select_ef(JpkiFile.AUTH_KEY), SW.OK, what="SELECT EF 0017")
        di = digest_info_for(b"jpki conformance", "sha256")
        r = self.send(CommandApdu(0x80, 0x2A, 0x00, 0x80, di, le=256))
        _expect_sw(r, SW.SECURITY_STATUS_NOT_SATISFIED, what="sign after selecting another DF")
        return "6982: selecting another application cleared the verified PIN"

    # corrected behaviours (card-protocol.md §1-§6, as read off real cards)

    def select_mf(self) -> str:
        """SELECT MF: 6A86 after a cold reset; 9000 keeping the current DF otherwise."""
        mf = CommandApdu(0x00, 0xA4, 0x00, 0x00)
        detail = []
        try:
            self.conn.reset()
        except JpkiError:
            detail.append("cold reset not possible on this connection: not checked")
        else:
            _expect_sw(self.send(mf), SW.INCORRECT_P1P2, what="SELECT MF after a reset")
            detail.append("6A86 after a cold reset")
        self.in_app(Aid.JPKI.value, "JPKI AP")
        _expect_sw(self.send(mf), SW.OK, what="SELECT MF with the JPKI AP current")
        # The DF is still current: its EFs are still found by FID.
        _expect_sw(self.select_ef(JpkiFile.AUTH_CA_CERT), SW.OK, what="SELECT EF after SELECT MF")
        _expect_sw(self.read(0, 1), SW.OK, what="READ after SELECT MF")
        r = self.send(CommandApdu(0x00, 0xA4, 0x02, 0x0C, b"\x3f\x00"))
        _expect_sw(r, SW.FILE_NOT_FOUND, what="SELECT 3F00 by file id")
        detail += ["9000 keeping the current DF", "3F00 by FID 6A82"]
        return "; ".join(detail)

    def blocked_key_status(self) -> str:
        """Empty VERIFY on a blocked key answers 63C0 (text AP 0012 is blocked from issue)."""
        self.in_app(Aid.TEXT.value, "text AP")
        _expect_sw(self.select_ef(TextFile.BLOCKED), SW.OK, what="SELECT text AP EF 0012")
        r = self.send(CommandApdu(0x00, 0x20, 0x00, 0x80))
        _expect_sw(r, 0x63C0, what="empty VERIFY of the blocked key 0012")
        return "63C0 (blocked, and SW1 63 as OpenSC expects)"

    def access_split(self) -> str:
        """Without any credential: the free EFs read, the protected ones answer 6982."""
        plan = (
            (Aid.JPKI, JpkiFile.CERT_AVAILABILITY, True),
            (Aid.TEXT, TextFile.ISSUER_CERT, True),
            (Aid.TEXT, TextFile.AP_BASIC_DATA, True),
            (Aid.TEXT, TextFile.MY_NUMBER, False),
            (Aid.TEXT, TextFile.BASIC_INFO, False),
            (Aid.TEXT, TextFile.SIGNATURE, False),
            (Aid.TEXT, TextFile.SESSION_KEY, False),
            (Aid.TEXT, TextFile.SIGNED_KEY, False),
            (Aid.VISUAL, VisualFile.AP_BASIC_DATA, True),
            (Aid.VISUAL, VisualFile.ISSUER_CERT, True),
            (Aid.VISUAL, VisualFile.AGE_RECORD, False),
            (Aid.VISUAL, VisualFile.SURFACE, False),
            (Aid.VISUAL, VisualFile.MY_NUMBER_IMAGE, False),
        )
        current = None
        for aid, fid, free in plan:
            if aid is not current:
                self.in_app(aid.value, aid.name)
                current = aid
            what = f"{aid.name} EF {fid:04X}"
            _expect_sw(self.select_ef(fid), SW.OK, what=f"SELECT {what}")
            r = self.read(0, 1)
            if free:
                _expect_sw(r, SW.OK, what=f"READ {what} (free)")
            else:
                _expect_sw(r, SW.SECURITY_STATUS_NOT_SATISFIED, what=f"READ {what} (protected)")
                if r.data:
                    raise _Fail(f"READ {what}: data came with 6982")
        return "free: JPKI 0008, text 0004/0005, visual 0003/0004; 6982: the rest"

    def token_info_size(self) -> str:
        self.in_app(Aid.JPKI.value, "JPKI AP")
        _expect_sw(self.select_ef(JpkiFile.TOKEN_INFO), SW.OK, what="SELECT EF 0006")
        r = self.read(0, 256)
        _expect_sw(r, SW.OK, SW.END_OF_FILE, what="READ EF 0006")
        if len(r.data) < 160:
            raise _Fail(f"EF 0006 holds {len(r.data)} bytes, not a 160-byte CK_TOKEN_INFO")
        return f"{len(r.data)} bytes (CK_TOKEN_INFO is 160)"

    def cert_availability(self) -> str:
        self.in_app(Aid.JPKI.value, "JPKI AP")
        _expect_sw(self.select_ef(JpkiFile.CERT_AVAILABILITY), SW.OK, what="SELECT EF 0008")
        r = self.read(0, 256)
        _expect_sw(r, SW.OK, SW.END_OF_FILE, what="READ EF 0008")
        if len(r.data) != 3:
            raise _Fail(f"EF 0008 holds {len(r.data)} bytes, not 3")
        if CertSlot.AUTH in self.certs and r.data[1] != 0x8F:
            raise _Fail(f"EF 0008 byte 1 is {r.data[1]:02X} though the auth certificate exists")
        return f"{r.data.hex().upper()}"

    def cvc_chain(self, aid: Aid, fid: int) -> Callable[[], str]:
        def check() -> str:
            self.in_app(aid.value, aid.name)
            _expect_sw(self.select_ef(fid), SW.OK, what=f"SELECT {aid.name} EF 0004")
            raw = self.proto.read_file(0x7FFF)
            step = check_cvc(raw, self.keyring, f"{aid.name} EF 0004")
            if step.key is not None:
                return f"CVC verifies with CVCA {step.cvca} ({step.hierarchy})"
            assert step.result is not None
            if step.result.status is IntegrityStatus.INDETERMINATE and step.cvca is not None:
                raise _Skip(f"{step.result.reasons[0]}")
            raise _Fail("; ".join(step.result.reasons))

        return check

    def sign_schemes(self) -> str:
        """P1 00-05 with the auth key (PIN verified), each checked; P1 06 answers 6A86."""
        if not self.check_passed("verify_auth_pin"):
            raise _Skip("the auth PIN was not verified")
        cert = self.certs.get(CertSlot.AUTH)
        if cert is None or not isinstance(cert.public_key, rsa.RSAPublicKey):
            raise _Skip("the auth certificate (RSA) could not be read")
        key = cert.public_key
        # Still in the JPKI AP with the auth PIN verified by verify_auth_pin (same DF since).
        _expect_sw(self.select_ef(JpkiFile.AUTH_KEY), SW.OK, what="SELECT EF 0017")
        message = b"jpki conformance P1 schemes"
        digest = hashlib.sha256(message).digest()
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
        plan: list[tuple[int, bytes, Callable[[bytes], bool]]] = [
            (0, digest_info_for(message, "sha256"), lambda s: _pkcs1(key, s, message)),
            (1, message, lambda s: _payload(key, s, digest)),
            (2, digest, lambda s: _pkcs1(key, s, message)),
            (3, message, lambda s: _pkcs1(key, s, message)),
            (4, digest, lambda s: _pss(key, s, message, pss)),
            (5, message, lambda s: _pss(key, s, message, pss)),
        ]
        for p1, data, ok in plan:
            r = self.send(CommandApdu(0x80, 0x2A, p1, 0x80, data, le=256))
            _expect_sw(r, SW.OK, what=f"sign with P1={p1:02X}")
            if not ok(r.data):
                raise _Fail(f"P1={p1:02X}: the signature is not what the scheme gives")
        r = self.send(CommandApdu(0x80, 0x2A, 0x06, 0x80, digest, le=256))
        _expect_sw(r, SW.INCORRECT_P1P2, what="sign with P1=06")
        r = self.send(CommandApdu(0x80, 0x2A, 0x02, 0x80, digest[:31], le=256))
        _expect_sw(r, SW.WRONG_LENGTH, SW.CONDITIONS_NOT_SATISFIED, what="P1=02 with 31 bytes")
        return "P1 00-05 verify with the auth certificate; P1 06 6A86; a short hash refused"

    def check_passed(self, name: str) -> bool:
        return any(r.name == name and r.status is CheckStatus.PASS for r in self.results)


def _pkcs1(key: rsa.RSAPublicKey, signature: bytes, message: bytes) -> bool:
    return pkcs1_sha256_ok(key, signature, message)


def _payload(key: rsa.RSAPublicKey, signature: bytes, payload: bytes) -> bool:
    return pkcs1_payload_ok(key, signature, payload)


def _pss(key: rsa.RSAPublicKey, signature: bytes, message: bytes, pss: padding.PSS) -> bool:
    try:
        key.verify(signature, message, pss, hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def _issued_by(leaf: JpkiCertificate, ca: JpkiCertificate) -> str | None:
    """None if ``ca`` signed ``leaf`` (RSA PKCS#1 v1.5), else why not."""
    if leaf.issuer != ca.subject:
        return "issuer name differs from the CA subject"
    key = ca.public_key
    try:
        alg = leaf.certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:  # a signature OID cryptography does not know: not a traceback
        alg = None
    if not isinstance(key, rsa.RSAPublicKey) or alg is None:
        return "not an RSA PKCS#1 v1.5 signature"
    try:
        key.verify(leaf.certificate.signature, leaf.tbs_der, padding.PKCS1v15(), alg)
    except InvalidSignature:
        return "signature does not verify with the CA key"
    return None


#: (name, title) of every check in the order they run; docs/cli.md lists them.
CHECKS: tuple[tuple[str, str], ...] = (
    ("atr", "card reports an ATR"),
    ("select_jpki", "SELECT JPKI AP"),
    ("select_text", "SELECT text AP (券面入力補助AP)"),
    ("select_visual", "SELECT visual AP (券面事項確認AP)"),
    ("select_unknown_aid", "unknown AID answered 6A82"),
    ("token_info", "token info label (EF 0006)"),
    ("read_auth_cert", "auth certificate read, DER size consistent (EF 000A)"),
    ("read_auth_ca_cert", "auth CA certificate read, DER size consistent (EF 000B)"),
    ("read_sign_ca_cert", "signing CA certificate read, DER size consistent (EF 0002)"),
    ("sign_cert_protected", "signing certificate needs the password (6982)"),
    ("pin_status_auth", "auth PIN tries reported by empty VERIFY, none spent"),
    ("pin_status_sign", "signing password tries reported by empty VERIFY, none spent"),
    ("pin_status_text", "input-support PIN tries reported (text AP)"),
    ("key_ef_unreadable", "private key EFs refuse READ BINARY (6981)"),
    ("sign_without_pin", "signing without a verified PIN refused (6982)"),
    ("card_info_protected", "My Number, basic info and surface need a PIN (6982)"),
    ("unknown_ins", "unknown INS answered 6D00"),
    ("unknown_cla", "unknown CLA answered 6E00"),
    ("unknown_file", "unknown EF answered 6A82"),
    ("read_past_end", "short tail 9000, read past the end 6B00"),
    ("select_mf", "SELECT MF: 6A86 after reset, 9000 keeping the DF; 3F00 by FID 6A82"),
    ("blocked_key_status", "empty VERIFY of a blocked key answers 63C0 (text AP 0012)"),
    ("access_split", "free EFs read, protected ones 6982 (JPKI, text AP, visual AP)"),
    ("token_info_size", "EF 0006 is a 160-byte CK_TOKEN_INFO"),
    ("cert_availability", "EF 0008 certificate availability (3 bytes)"),
    ("cvc_chain_text", "text AP EF 0004 CVC verifies with its CVCA key"),
    ("cvc_chain_visual", "visual AP EF 0004 CVC verifies with its CVCA key"),
    ("verify_auth_pin", "auth PIN VERIFY (with --with-pin)"),
    ("sign_auth_round_trip", "auth key signs; signature verifies with the auth certificate"),
    ("sign_schemes", "signing schemes P1 00-05 (SHA-256 on card, PSS); P1 06 6A86"),
    ("security_cleared_by_df_select", "selecting another DF clears the verified PIN"),
    ("verify_sign_pin", "signing password VERIFY (with a signing password)"),
    ("read_sign_cert", "signing certificate read after the password (EF 0001)"),
    ("sign_sign_round_trip", "signing key signs; signature verifies with the certificate"),
    ("cert_kinds", "certificate kinds right and issued by their CAs (jpki.cert)"),
)


def run_conformance(
    conn: Connection,
    *,
    with_pin: bool = False,
    pin: Secret | None = None,
    sign_pin: Secret | None = None,
    cvca_keys: Iterable[CvcaKey] = (),
) -> ConformanceReport:
    """Run every check over ``conn``; see the module docstring for the PIN rules.

    ``pin`` is the auth PIN (4 digits), ``sign_pin`` the signing password (optional: it
    adds the signing-certificate and signing-key checks). Both are used only with
    ``with_pin``. A transport error ends the run (``report.aborted``).
    """
    rec = RecordingConnection(conn)
    s = _Suite(rec, with_pin, pin, sign_pin, keyring=CvcaKeyring(cvca_keys))
    fns: dict[str, Callable[[], str]] = {
        "atr": s.atr,
        "select_jpki": s.select_app(Aid.JPKI),
        "select_text": s.select_app(Aid.TEXT),
        "select_visual": s.select_app(Aid.VISUAL),
        "select_unknown_aid": s.select_unknown_aid,
        "token_info": s.token_info,
        "read_auth_cert": s.read_cert(CertSlot.AUTH),
        "read_auth_ca_cert": s.read_cert(CertSlot.AUTH_CA),
        "read_sign_ca_cert": s.read_cert(CertSlot.SIGNING_CA),
        "sign_cert_protected": s.sign_cert_protected,
        "pin_status_auth": s.pin_status(KeyKind.AUTH),
        "pin_status_sign": s.pin_status(KeyKind.SIGNING),
        "pin_status_text": s.text_pin_status,
        "key_ef_unreadable": s.key_ef_unreadable,
        "sign_without_pin": s.sign_without_pin,
        "card_info_protected": s.protected_card_info,
        "unknown_ins": s.unknown_ins,
        "unknown_cla": s.unknown_cla,
        "unknown_file": s.unknown_file,
        "read_past_end": s.read_past_end,
        "select_mf": s.select_mf,
        "blocked_key_status": s.blocked_key_status,
        "access_split": s.access_split,
        "token_info_size": s.token_info_size,
        "cert_availability": s.cert_availability,
        "cvc_chain_text": s.cvc_chain(Aid.TEXT, TextFile.ISSUER_CERT),
        "cvc_chain_visual": s.cvc_chain(Aid.VISUAL, VisualFile.ISSUER_CERT),
        "verify_auth_pin": s.verify(KeyKind.AUTH, pin),
        "sign_auth_round_trip": s.sign_round_trip(KeyKind.AUTH, CertSlot.AUTH),
        "sign_schemes": s.sign_schemes,
        "security_cleared_by_df_select": s.security_cleared_by_df_select,
        "verify_sign_pin": s.verify(KeyKind.SIGNING, sign_pin),
        "read_sign_cert": s.read_signing_cert,
        "sign_sign_round_trip": s.sign_round_trip(KeyKind.SIGNING, CertSlot.SIGNING),
        "cert_kinds": s.cert_kinds,
    }
    for name, title in CHECKS:
        s.run(name, title, fns[name])
    if s.aborted is None:
        # Leave the card as a fresh session would find it: no PIN verified.
        with suppress(JpkiError):
            s.select_df(Aid.JPKI.value)
    return ConformanceReport(
        atr=_atr(conn), with_pin=with_pin, checks=tuple(s.results), aborted=s.aborted
    )


def _atr(conn: Connection) -> bytes:
    try:
        return conn.atr
    except JpkiError:
        return b""
