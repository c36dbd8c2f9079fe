"""The simulated My Number card chip: JPKI AP, text AP and visual AP behind ``process()``.

Written from the card-protocol spec, not from the client. Every choice the spec leaves
open (status word precedence, P2 variants, counters of the collation keys) is listed in
docs/simulator.md. ``process`` never raises except ``CardRemovedError`` (fault injection, or a
closed card): every malformed command gets a status word.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from jpki.apdu import SW, CommandApdu
from jpki.errors import ApduFormatError, CardRemovedError, ProfileError
from jpki.sim.faults import FaultConfig, FaultyCard
from jpki.sim.layout import (
    CardInfoKeys,
    VisualImages,
    pkcs1_type1_sign,
    text_ap_files,
    visual_ap_files,
)
from jpki.sim.profile import (
    CHANGEABLE,
    CardProfile,
    CardState,
    KeyId,
    ProfileStore,
    TokenKind,
    pin_format_ok,
)

log = logging.getLogger("jpki.sim")


class Aid(bytes, enum.Enum):
    """Application identifiers the simulated card answers (others: 6A82)."""

    JPKI = bytes.fromhex("D392F000260100000001")
    TEXT = bytes.fromhex("D3921000310001010408")
    VISUAL = bytes.fromhex("D3921000310001010402")


class FileKind(enum.Enum):
    """What an elementary file on the simulated card holds."""

    DATA = "data"
    PIN = "pin"  # VERIFY target
    PRIVATE_KEY = "private_key"  # COMPUTE DIGITAL SIGNATURE target


@dataclass(frozen=True)
class ElementaryFile:
    """One EF. ``read_with``: None = free read, else any one of these keys verified."""

    fid: int
    kind: FileKind
    content: bytes = b""
    read_with: frozenset[KeyId] | None = None
    key: KeyId | None = None  # PIN: the key verified; PRIVATE_KEY: the key it needs
    rsa_key: str | None = None  # PRIVATE_KEY: "auth" / "sign"

    def __repr__(self) -> str:  # contents can be personal data
        return f"ElementaryFile({self.fid:04X}, {self.kind.value}, {len(self.content)} bytes)"


# DER DigestInfo prefixes whose signature cryptography can make directly (same bytes as raw RSA).
_DIGEST_INFO_PREFIXES: tuple[tuple[bytes, hashes.HashAlgorithm], ...] = (
    (bytes.fromhex("3021300906052b0e03021a05000414"), hashes.SHA1()),  # noqa: S303 (the card signs what it is sent)
    (bytes.fromhex("302d300d06096086480165030402040500041c"), hashes.SHA224()),
    (bytes.fromhex("3031300d060960864801650304020105000420"), hashes.SHA256()),
    (bytes.fromhex("3041300d060960864801650304020205000430"), hashes.SHA384()),
    (bytes.fromhex("3051300d060960864801650304020305000440"), hashes.SHA512()),
)


def sign_raw(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """PKCS#1 v1.5 type-1 padding of ``data`` as sent (the card hashes nothing), then RSA."""
    for prefix, alg in _DIGEST_INFO_PREFIXES:
        if data.startswith(prefix) and len(data) == len(prefix) + alg.digest_size:
            try:  # the same EM as pkcs1_type1_sign, computed by OpenSSL (faster, constant time)
                digest = data[len(prefix) :]
                return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(alg))
            except (UnsupportedAlgorithm, ValueError):
                break
    return pkcs1_type1_sign(key, data)


def token_info(label: str, serial: str) -> bytes:
    """JPKI EF 0006: a PKCS#11 ``CK_TOKEN_INFO`` with 32-bit big-endian integers, 160 bytes."""

    def text(value: str, n: int) -> bytes:
        return value.encode("ascii")[:n].ljust(n, b" ")

    unavailable = 0xFFFFFFFF
    ints = (
        0x0000040D,  # flags: RNG | LOGIN_REQUIRED | USER_PIN_INITIALIZED | TOKEN_INITIALIZED
        0,  # ulMaxSessionCount: effectively infinite
        unavailable,  # ulSessionCount
        0,  # ulMaxRwSessionCount
        unavailable,  # ulRwSessionCount
        16,  # ulMaxPinLen
        4,  # ulMinPinLen
        unavailable,
        unavailable,
        unavailable,
        unavailable,  # total/free public/private memory
    )
    out = (
        text(label, 32)
        + text("JPKI SIMULATOR", 32)
        + text("JPKI-SIM", 16)
        + text(serial, 16)
        + b"".join(i.to_bytes(4, "big") for i in ints)
        + b"03"  # hardwareVersion: ASCII digits, as physical cards write it
        + b"01"  # firmwareVersion
        + b" " * 16  # utcTime: no clock on the token
    )
    assert len(out) == 160
    return out


def _asset(name: str) -> bytes:
    return resources.files("jpki.sim").joinpath("assets", name).read_bytes()


def load_images() -> VisualImages:
    """The committed images (vectors/make_sim_assets.py made them)."""
    return VisualImages(
        name_png=_asset("name.png"),
        address_png=_asset("address.png"),
        face_jp2=_asset("face.jp2"),
        security_code_png=_asset("security_code.png"),
        my_number_png=_asset("my_number.png"),
    )


def _sw(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


_OK = _sw(SW.OK)
MAX_SIGN_INPUT = 245  # RSA-2048: k - 11
MAX_MESSAGE = 255  # schemes that hash on the card: the short-APDU limit
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


class SimulatedCard:
    """A My Number card chip in memory, its counters persisted in a profile directory.

    The chip model only: it never misbehaves. Faults (faults.json) wrap it from outside
    (``jpki.sim.faults.FaultyCard``; ``open_simulated_card`` applies a profile's faults.json).
    ``durable=False`` skips fsync when persisting counters (see ``ProfileStore``).
    """

    def __init__(self, profile: ProfileStore | Path | str, *, durable: bool = True) -> None:
        if isinstance(profile, ProfileStore):
            self._store = profile
        else:
            self._store = ProfileStore(profile, durable=durable)
        self.profile: CardProfile = self._store.profile
        self._state: CardState = self._store.load_state()
        self._lock = threading.RLock()
        self._closed = False
        self.apdu_count = 0
        self._app: Aid | None = None  # None: the MF (after reset)
        self._ef: ElementaryFile | None = None
        self._verified: set[KeyId] = set()

    # --- public surface ------------------------------------------------------------------

    @property
    def atr(self) -> bytes:
        """The ATR of this card's profile."""
        return self.profile.atr

    @property
    def path(self) -> Path:
        """The profile directory the card's state is persisted in."""
        return self._store.path

    def tries_left(self, key: KeyId) -> int:
        """Tries left on ``key`` (PIN or collation key) in the current state."""
        return self._state.tries_left[key]

    def reset(self) -> bytes:
        """Power-cycle (re-insert after a removal): security state cleared; returns the ATR.

        The state file is re-read, so `jpki sim reset` on a running simulator takes effect.
        """
        with self._lock:
            if self._closed:
                raise CardRemovedError("simulated card is closed")
            self._state = self._store.load_state()
            self._clear_session()
            return self.atr

    def close(self) -> None:
        """Clear the security state; later commands raise ``CardRemovedError``."""
        with self._lock:
            self._closed = True
            self._clear_session()

    def process(self, command: bytes) -> bytes:
        """One command APDU in, response (data + SW1 SW2) out."""
        with self._lock:
            if self._closed:
                raise CardRemovedError("simulated card is closed")
            self.apdu_count += 1
            return self._dispatch(bytes(command))

    # --- dispatch ------------------------------------------------------------------------

    def _clear_session(self) -> None:
        self._app = None
        self._ef = None
        self._verified.clear()

    def _dispatch(self, raw: bytes) -> bytes:
        if len(raw) < 4:
            return _sw(SW.WRONG_LENGTH)
        cla, ins = raw[0], raw[1]
        # Secure messaging (b4-b3), chaining (b5), other classes: refused as a CLA.
        if cla & 0xF0 not in (0x00, 0x80) or cla & 0x0C:
            return _sw(SW.CLA_NOT_SUPPORTED)
        if cla & 0x03:
            return _sw(0x6881)  # logical channel not supported: only channel 0
        entry = self._handlers.get(ins)
        if entry is None:
            return _sw(SW.INS_NOT_SUPPORTED)
        want_cla, handler = entry
        if cla != want_cla:
            return _sw(SW.CLA_NOT_SUPPORTED)
        try:
            apdu = CommandApdu.decode(raw)
        except ApduFormatError:
            return _sw(SW.WRONG_LENGTH)
        try:
            return handler(apdu)
        except CardRemovedError:
            raise
        except ProfileError:
            log.exception("simulator could not persist its state")
            return _sw(SW.MEMORY_FAILURE)
        except Exception:  # a bug in the model must not look like a transport failure
            log.exception("simulator bug while processing %02X %02X", cla, ins)
            return _sw(SW.NO_PRECISE_DIAGNOSIS)

    @cached_property
    def _handlers(self) -> Mapping[int, tuple[int, Callable[[CommandApdu], bytes]]]:
        return {
            0xA4: (0x00, self._select),
            0xB0: (0x00, self._read_binary),
            0x20: (0x00, self._verify),
            0x24: (0x00, self._change),
            0x2A: (0x80, self._sign),
        }

    # --- file system ---------------------------------------------------------------------

    @cached_property
    def _rsa(self) -> Mapping[str, rsa.RSAPrivateKey]:
        p = self.profile
        return {
            "auth": p.private_key("auth"),
            "sign": p.private_key("sign"),
            "text": p.private_key("text_card"),
            "visual": p.private_key("visual_card"),
        }

    def _content(self, ap: str, fid: int, generated: bytes) -> bytes:
        """A dump's file if the profile has one, else the generated content."""
        return self.profile.dump_files.get(f"{ap}-{fid:04X}", generated)

    @cached_property
    def _jpki_files(self) -> Mapping[int, ElementaryFile]:
        p = self.profile
        serial = hashlib.sha256(p.auth_cert).hexdigest()[:16].upper()
        availability = bytes([0x8F if p.has_sign_cert else 0x00, 0x8F, 0x00])
        pk, d = FileKind.PRIVATE_KEY, FileKind.DATA
        # A phone's secure element guards the auth certificate with the auth PIN (spec §2).
        auth_read = frozenset({KeyId.AUTH_PIN}) if p.token is TokenKind.ANDROID else None

        def c(fid: int, generated: bytes) -> bytes:
            return self._content("jpki", fid, generated)

        files = [
            ElementaryFile(0x0002, d, c(0x0002, p.sign_ca_cert)),
            ElementaryFile(0x000A, d, c(0x000A, p.auth_cert), auth_read),
            ElementaryFile(0x000B, d, c(0x000B, p.auth_ca_cert)),
            ElementaryFile(0x0006, d, c(0x0006, token_info(p.token_label, serial))),
            ElementaryFile(0x0008, d, c(0x0008, availability)),
            ElementaryFile(0x0017, pk, key=KeyId.AUTH_PIN, rsa_key="auth"),
            ElementaryFile(0x0018, FileKind.PIN, key=KeyId.AUTH_PIN),
            ElementaryFile(0x001B, FileKind.PIN, key=KeyId.SIGN_PIN),
        ]
        if p.has_sign_cert:
            files += [
                ElementaryFile(0x0001, d, c(0x0001, p.sign_cert), frozenset({KeyId.SIGN_PIN})),
                ElementaryFile(0x001A, pk, key=KeyId.SIGN_PIN, rsa_key="sign"),
            ]
        return {f.fid: f for f in files}

    def _keys(self, ap: str) -> CardInfoKeys:
        p = self.profile
        return CardInfoKeys(
            cvca=p.private_key(f"{ap}_cvca"),
            cvca_id=p.key_ids[f"{ap}_cvca"],
            ap=p.private_key(f"{ap}_ap"),
            ap_id=p.key_ids[f"{ap}_ap"],
            card=p.private_key(f"{ap}_card"),
        )

    @cached_property
    def _text_files(self) -> Mapping[int, ElementaryFile]:
        p, person = self.profile, self.profile.person
        t = text_ap_files(
            my_number=person.my_number,
            name=person.name,
            address=person.address,
            birth_date=person.birth_date,
            sex=person.sex,
            keys=self._keys("text"),
            session_key=p.private_key("text_session").public_key(),
            basic_key_id=p.key_ids["text_basic"],
            long_form=p.text_long_form,
        )
        d = FileKind.DATA
        pin, a, b = KeyId.SUPPORT_PIN, KeyId.TEXT_A, KeyId.TEXT_B
        any_of = frozenset({pin, a, b})

        def ef(fid: int, generated: bytes, read_with: frozenset[KeyId] | None) -> ElementaryFile:
            return ElementaryFile(fid, d, self._content("text", fid, generated), read_with)

        files = [
            ef(0x0001, t.ef0001, frozenset({pin, a})),
            ef(0x0002, t.ef0002, frozenset({pin, b})),
            ef(0x0003, t.ef0003, any_of),
            ef(0x0004, t.ef0004, None),
            ef(0x0005, t.ef0005, None),
            ef(0x0006, t.ef0006, any_of),
            ef(0x0007, t.ef0007, any_of),
            ElementaryFile(0x0011, FileKind.PIN, key=pin),
            ElementaryFile(0x0012, FileKind.PIN, key=KeyId.TEXT_0012),
            ElementaryFile(0x0014, FileKind.PIN, key=a),
            ElementaryFile(0x0015, FileKind.PIN, key=b),
        ]
        return {f.fid: f for f in files}

    @cached_property
    def _visual_files(self) -> Mapping[int, ElementaryFile]:
        p = self.profile
        v = visual_ap_files(
            birth_date=p.person.birth_date,
            sex=p.person.sex,
            expiry_date=p.expiry_date,
            municipality_code=p.municipality_code,
            images=load_images(),
            keys=self._keys("visual"),
        )
        d = FileKind.DATA
        a, b = KeyId.VISUAL_A, KeyId.VISUAL_B
        a_or_b = frozenset({a, b})

        def ef(fid: int, generated: bytes, read_with: frozenset[KeyId] | None) -> ElementaryFile:
            return ElementaryFile(fid, d, self._content("visual", fid, generated), read_with)

        files = [
            ef(0x0001, v.ef0001, frozenset({KeyId.VISUAL_BIRTH})),
            ef(0x0002, v.ef0002, a_or_b),
            ef(0x0003, v.ef0003, None),
            ef(0x0004, v.ef0004, None),
            ef(0x0005, v.ef0005, frozenset({a})),
            ef(0x0006, v.ef0006, a_or_b),
            ElementaryFile(0x0011, FileKind.PIN, key=KeyId.VISUAL_BIRTH),
            ElementaryFile(0x0012, FileKind.PIN, key=b),
            ElementaryFile(0x0013, FileKind.PIN, key=a),
        ]
        return {f.fid: f for f in files}

    def files(self, app: Aid) -> Mapping[int, ElementaryFile]:
        """The EF table of one application (built on first use)."""
        if app is Aid.JPKI:
            return self._jpki_files
        if app is Aid.TEXT:
            return self._text_files
        return self._visual_files

    def _lookup(self, fid: int) -> ElementaryFile | None:
        if self._app is None:
            return None  # the MF holds no EF in this model
        return self.files(self._app).get(fid)

    def _by_short_id(self, p: int) -> tuple[ElementaryFile | None, bool]:
        """Resolve a P1/P2 of ``80|SFI``: (file or None, whether the byte was well-formed)."""
        if not p & 0x80 or p & 0x60 or not p & 0x1F:
            return None, False
        return self._lookup(p & 0x1F), True

    # --- SELECT --------------------------------------------------------------------------

    def _select(self, apdu: CommandApdu) -> bytes:
        p1, p2, data = apdu.p1, apdu.p2, apdu.data
        if p2 not in (0x00, 0x04, 0x08, 0x0C):  # first occurrence; FCI/FCP/FMD/none
            return _sw(SW.INCORRECT_P1P2)
        if p1 == 0x04:
            if not 1 <= len(data) <= 16:
                return _sw(SW.WRONG_LENGTH)
            try:
                app = Aid(data)
            except ValueError:
                return _sw(SW.FILE_NOT_FOUND)
            self._clear_session()
            self._app = app
            return _OK
        if p1 == 0x00 and not data:
            # SELECT MF as a real card answers it (spec §1): refused after a cold reset; with an
            # application current, 9000 that changes nothing (DF and verified PINs stay).
            return _sw(SW.INCORRECT_P1P2) if self._app is None else _OK
        if data == b"\x3f\x00":
            return _sw(SW.FILE_NOT_FOUND)  # the MF has no FID-addressable form on this card
        if p1 in (0x00, 0x02):
            if len(data) != 2:
                return _sw(SW.WRONG_LENGTH)
            ef = self._lookup(int.from_bytes(data, "big"))
            if ef is None:
                return _sw(SW.FILE_NOT_FOUND)
            self._ef = ef
            return _OK
        return _sw(SW.INCORRECT_P1P2)

    # --- READ BINARY ---------------------------------------------------------------------

    def _read_binary(self, apdu: CommandApdu) -> bytes:
        if apdu.data or apdu.le is None:
            return _sw(SW.WRONG_LENGTH)
        if apdu.p1 & 0x80:
            ef, ok = self._by_short_id(apdu.p1)
            if not ok:
                return _sw(SW.INCORRECT_P1P2)
            if ef is None:
                return _sw(SW.FILE_NOT_FOUND)
            self._ef = ef
            offset = apdu.p2
        else:
            ef = self._ef
            if ef is None:
                return _sw(SW.COMMAND_NOT_ALLOWED)  # no current EF
            offset = (apdu.p1 << 8) | apdu.p2
        if ef.kind is not FileKind.DATA:
            return _sw(SW.COMMAND_INCOMPATIBLE_WITH_FILE)
        if ef.read_with is not None and not ef.read_with & self._verified:
            return _sw(SW.SECURITY_STATUS_NOT_SATISFIED)
        if offset >= len(ef.content):
            return _sw(SW.WRONG_P1P2)
        return ef.content[offset : offset + apdu.le] + _OK

    # --- VERIFY / CHANGE REFERENCE DATA ------------------------------------------------------

    def _key_file(self, p2: int) -> tuple[ElementaryFile | None, bytes | None]:
        """The PIN EF a VERIFY/CHANGE names by P2 (``80`` current EF, ``80|SFI``)."""
        if p2 == 0x80:
            ef = self._ef
        else:
            ef, ok = self._by_short_id(p2)
            if not ok:
                return None, _sw(SW.INCORRECT_P1P2)
        if ef is None or ef.kind is not FileKind.PIN or ef.key is None:
            return None, _sw(SW.REFERENCED_DATA_NOT_FOUND)
        return ef, None

    def _reference(self, key: KeyId) -> bytes:
        value = self._state.changed_pins.get(key) or self.profile.initial_value(key)
        return value.encode("ascii")

    def _save(self, change: Callable[[CardState], None], *, durable: bool = True) -> None:
        """Apply ``change`` to the state on disk (re-read under the profile lock) and keep it.

        Another simulator process on the same profile may have spent a try since we last
        looked: the lock plus the re-read make every update land on the latest counters.
        On failure the in-memory state is left as it was.
        """
        self._state = self._store.update(change, durable=durable)

    def _refresh(self) -> None:
        """Re-read the counters (another process may have changed them); keep ours on error."""
        try:
            self._state = self._store.load_state()
        except ProfileError:
            log.warning("simulator could not re-read its state; using the last one")

    def _verify(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 != 0x00:
            return _sw(SW.INCORRECT_P1P2)
        ef, err = self._key_file(apdu.p2)
        if ef is None or ef.key is None:
            return err or _sw(SW.REFERENCED_DATA_NOT_FOUND)
        key = ef.key
        if not apdu.data:
            # Status only: spends nothing. A blocked key answers 63C0 here (spec §3), not 6984.
            self._refresh()
            return _sw(0x63C0 | min(self._state.tries_left[key], 15))
        outcome: list[int] = []

        def spend(s: CardState) -> None:
            tries = s.tries_left[key]
            outcome.append(tries)
            if tries > 0:
                s.tries_left[key] = tries - 1

        # Spend the try durably BEFORE comparing (under the lock, on the latest counter):
        # tearing the power never gives a free try, and neither does a second process.
        self._save(spend)
        tries = outcome[0]
        if tries == 0:
            self._verified.discard(key)
            return _sw(SW.REFERENCE_DATA_BLOCKED)
        if hmac.compare_digest(apdu.data, self._reference(key)):
            # The reset may skip fsync (os.replace keeps it atomic): if a machine crash loses
            # it, state.json keeps the durable spend above, i.e. the counter ends one LOWER
            # than it should, never higher, so no crash gives a free try. (A filesystem that
            # loses the data of a rename it kept leaves an empty state.json, which the
            # simulator refuses to load rather than treat as fresh.) This halves the fsyncs
            # of a good VERIFY; the spend before the comparison must stay durable.
            self._save(
                lambda s: s.tries_left.__setitem__(key, self.profile.max_tries[key]),
                durable=False,
            )
            self._verified.add(key)
            return _OK
        self._verified.discard(key)
        return _sw(0x63C0 | min(tries - 1, 15))

    def _change(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 != 0x01:  # only "new value after VERIFY"; 00 (old+new) is not supported
            return _sw(SW.INCORRECT_P1P2)
        ef, err = self._key_file(apdu.p2)
        if ef is None or ef.key is None:
            return err or _sw(SW.REFERENCED_DATA_NOT_FOUND)
        key = ef.key
        self._refresh()
        if self._state.tries_left[key] == 0:
            return _sw(SW.REFERENCE_DATA_BLOCKED)
        if key not in self._verified:
            return _sw(SW.SECURITY_STATUS_NOT_SATISFIED)
        if key not in CHANGEABLE:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if not apdu.data:
            return _sw(SW.WRONG_LENGTH)
        if not pin_format_ok(key, apdu.data):
            return _sw(SW.WRONG_DATA)
        new = apdu.data.decode("ascii")

        def change(s: CardState) -> None:
            s.changed_pins[key] = new
            s.tries_left[key] = self.profile.max_tries[key]

        self._save(change)
        return _OK

    # --- COMPUTE DIGITAL SIGNATURE -----------------------------------------------------------

    def _sign(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 > 0x05:
            return _sw(SW.INCORRECT_P1P2)
        if self._app in (Aid.TEXT, Aid.VISUAL):
            # Card presence (spec §6.1): the AP's own key, P2 00, no credential.
            if apdu.p2 != 0x00:
                return _sw(SW.INCORRECT_P1P2)
            rsa_name = "text" if self._app is Aid.TEXT else "visual"
            needs: KeyId | None = None
        else:
            if apdu.p2 == 0x80:
                ef = self._ef
                if ef is None or ef.kind is not FileKind.PRIVATE_KEY:
                    return _sw(SW.CONDITIONS_NOT_SATISFIED)  # select a key EF first
            else:
                ef, ok = self._by_short_id(apdu.p2)
                if not ok:
                    return _sw(SW.INCORRECT_P1P2)
                if ef is None or ef.kind is not FileKind.PRIVATE_KEY:
                    return _sw(SW.REFERENCED_DATA_NOT_FOUND)
            if ef.rsa_key is None:
                return _sw(SW.REFERENCED_DATA_NOT_FOUND)
            rsa_name, needs = ef.rsa_key, ef.key
        data = apdu.data
        # Input lengths per scheme (spec §4), checked before the PIN.
        if apdu.p1 == 0x00:
            length_ok = 1 <= len(data) <= MAX_SIGN_INPUT
        elif apdu.p1 in (0x02, 0x04):
            length_ok = len(data) == 32
        else:
            length_ok = 1 <= len(data) <= MAX_MESSAGE
        if not length_ok:
            return _sw(SW.WRONG_LENGTH)
        if needs is not None and needs not in self._verified:
            return _sw(SW.SECURITY_STATUS_NOT_SATISFIED)
        key = self._rsa[rsa_name]
        size = (key.key_size + 7) // 8
        if apdu.le is not None and apdu.le < size:
            return _sw(0x6C00 | (size & 0xFF))  # wrong Le; the exact length is the key size
        return _scheme_sign(key, apdu.p1, data) + _OK


def _scheme_sign(key: rsa.RSAPrivateKey, p1: int, data: bytes) -> bytes:
    """The six signing schemes of COMPUTE DIGITAL SIGNATURE P1 00–05 (spec §4)."""
    if p1 == 0x00:
        return sign_raw(key, data)
    if p1 == 0x01:  # bare SHA-256, no DigestInfo
        return pkcs1_type1_sign(key, hashlib.sha256(data).digest())
    if p1 == 0x02:
        return key.sign(data, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    if p1 == 0x03:
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if p1 == 0x04:
        return key.sign(data, _PSS, utils.Prehashed(hashes.SHA256()))
    return key.sign(data, _PSS, hashes.SHA256())


def open_simulated_card(
    path: Path | str,
    *,
    faults: FaultConfig | None = None,
    durable: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> SimulatedCard | FaultyCard:
    """Open the simulated card stored in profile directory ``path``.

    With faults (``faults``, else the profile's faults.json) the chip comes wrapped in a
    ``FaultyCard``; without, it is the bare ``SimulatedCard``.
    """
    card = SimulatedCard(path, durable=durable)
    config = faults if faults is not None else FaultConfig.load(card._store.faults_path)
    if not config.active:
        return card
    return FaultyCard(card, config, sleep=sleep)
