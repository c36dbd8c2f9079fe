"""Simulator card profiles: immutable card data plus an atomically persisted mutable state.

A profile is a directory:

* ``profile.json`` — what the card was issued with (certificates, private keys as PEM, initial
  PINs, person data, My Number, visual AP data). Never written by the chip model.
* ``state.json`` — what the card has lived through: tries left per key, changed PINs. Rewritten
  atomically (temporary file, fsync, ``os.replace``, fsync of the directory) on every change,
  so a restarted simulator remembers a blocked PIN and a crash mid-write leaves the old state.
* ``faults.json`` — optional fault injection (see ``jpki.sim.faults``).
* ``state.lock`` — an ``fcntl`` lock held around every read-modify-write of ``state.json``,
  so two simulator processes on one profile never lose a counter update.
* ``cvca/`` — the profile's test CVCA public keys, laid out like ``jpki.trust``'s
  ``cvca_keys`` (``index.json`` + PEM), for ``--cvca-keys PROFILE/cvca``.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import fcntl
import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki.errors import ProfileError
from jpki.sim.layout import collation_b, era_yymmdd, key_id_text

PROFILE_FILE = "profile.json"
STATE_FILE = "state.json"
FAULTS_FILE = "faults.json"
LOCK_FILE = "state.lock"
CVCA_DIR = "cvca"
FORMAT = 2
STATE_FORMAT = 1

DEFAULT_ATR = bytes.fromhex("3BE000FF8131FE4514")


class TokenKind(enum.StrEnum):
    """What answers as the JPKI AP: the plastic card or a phone's secure element."""

    CARD = "card"
    ANDROID = "android"
    IPHONE = "iphone"

    @property
    def label(self) -> str:
        """The EF 0006 token label this kind of card carries."""
        return _TOKEN_LABELS[self]


_TOKEN_LABELS = {
    TokenKind.CARD: "JPKIAPICCTOKEN2",
    TokenKind.ANDROID: "JPKIAPGPSETOKEN",
    TokenKind.IPHONE: "JPKIAPIOSTOKEN",
}
DEFAULT_TOKEN_LABEL = TokenKind.CARD.label

# Files a dump may provide: ``<ap>-<fid>`` (physical content). Key EFs are never in a dump.
DUMP_FILES: frozenset[str] = frozenset(
    [f"jpki-{fid}" for fid in ("0001", "0002", "0006", "0008", "000A", "000B")]
    + [f"text-{fid:04X}" for fid in range(1, 8)]
    + [f"visual-{fid:04X}" for fid in range(1, 7)]
)


class KeyId(enum.StrEnum):
    """Every verifiable key on the card; the value names its counter in state.json."""

    AUTH_PIN = "auth_pin"  # JPKI AP EF 0018
    SIGN_PIN = "sign_pin"  # JPKI AP EF 001B (signing password)
    SUPPORT_PIN = "support_pin"  # text AP EF 0011 (input-support PIN)
    TEXT_A = "text_collation_a"  # text AP EF 0014 (My Number)
    TEXT_B = "text_collation_b"  # text AP EF 0015 (14 digits)
    VISUAL_BIRTH = "visual_birth_date"  # visual AP EF 0011 (era YYMMDD)
    VISUAL_B = "visual_collation_b"  # visual AP EF 0012 (14 digits)
    VISUAL_A = "visual_collation_a"  # visual AP EF 0013 (My Number)
    TEXT_0012 = "text_0012"  # text AP EF 0012: blocked from issue (purpose unknown)


DEFAULT_MAX_TRIES: Mapping[KeyId, int] = {
    KeyId.AUTH_PIN: 3,
    KeyId.SIGN_PIN: 5,
    KeyId.SUPPORT_PIN: 3,
    KeyId.TEXT_A: 10,
    KeyId.TEXT_B: 10,
    KeyId.VISUAL_BIRTH: 10,
    KeyId.VISUAL_B: 10,
    KeyId.VISUAL_A: 10,
    KeyId.TEXT_0012: 3,
}

# Keys a card leaves the factory with blocked (fresh state: 0 tries; `sim reset` keeps them so).
BLOCKED_FROM_ISSUE: frozenset[KeyId] = frozenset({KeyId.TEXT_0012})

# Keys whose value CHANGE REFERENCE DATA may replace (the collation keys derive from card data).
CHANGEABLE: frozenset[KeyId] = frozenset({KeyId.AUTH_PIN, KeyId.SIGN_PIN, KeyId.SUPPORT_PIN})

DEFAULT_PINS: Mapping[KeyId, str] = {
    KeyId.AUTH_PIN: "1234",
    KeyId.SIGN_PIN: "JPKITEST01",
    KeyId.SUPPORT_PIN: "5678",
}


def pin_format_ok(key: KeyId, value: bytes) -> bool:
    """Format the card enforces on a new PIN (CHANGE REFERENCE DATA)."""
    if key is KeyId.SIGN_PIN:
        return 6 <= len(value) <= 16 and all(
            c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" for c in value
        )
    return len(value) == 4 and value.isdigit()


@dataclass(frozen=True)
class SimPerson:
    """The card holder as the card-info applications show it. ``sex``: card coding 1/2/9."""

    name: str
    address: str
    birth_date: date
    sex: int
    my_number: str

    def __repr__(self) -> str:  # the My Number is specific personal information
        return f"SimPerson(name={self.name!r}, my_number=<redacted>)"


CARD_INFO_KEYS = (
    "text_cvca",  # signs the text AP CVC (EF 0004)
    "text_ap",  # certified by it; signs EF 0003 and EF 0007
    "text_card",  # DF51 in EF 0007; signs presence challenges in the text AP
    "text_session",  # EF 0006 (a terminal would encrypt a session key to it)
    "visual_cvca",  # signs the visual AP CVC (EF 0004)
    "visual_ap",  # certified by it; signs DF13, DF28, DF43
    "visual_card",  # DF12/DF24/DF42; signs presence challenges in the visual AP
)
KEY_IDS = ("text_cvca", "text_ap", "text_basic", "visual_cvca", "visual_ap")


@dataclass(frozen=True)
class CardProfile:
    """Everything a simulated card was issued with (``profile.json``)."""

    auth_cert: bytes  # DER
    auth_ca_cert: bytes
    sign_cert: bytes
    sign_ca_cert: bytes
    auth_key_pem: bytes
    sign_key_pem: bytes
    card_info_key_pems: Mapping[str, bytes]  # CARD_INFO_KEYS → PKCS#8 PEM
    key_ids: Mapping[str, bytes]  # KEY_IDS → 16-byte CVC key id
    person: SimPerson
    expiry_date: date
    security_code: str
    municipality_code: str = "13101"
    pins: Mapping[KeyId, str] = field(default_factory=lambda: dict(DEFAULT_PINS))
    max_tries: Mapping[KeyId, int] = field(default_factory=lambda: dict(DEFAULT_MAX_TRIES))
    token: TokenKind = TokenKind.CARD
    has_sign_cert: bool = True
    atr: bytes = DEFAULT_ATR
    text_long_form: bool = False  # write text AP lengths < 128 as 81 xx (BER) too
    seed: str | None = None
    person_index: int | None = None
    dump_files: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # DUMP_FILES
    dump_source: str | None = None

    def __repr__(self) -> str:  # keys, PINs and the My Number stay out of reprs
        return f"CardProfile(label={self.token_label!r}, person={self.person!r})"

    @property
    def token_label(self) -> str:
        """The EF 0006 token label of this profile's token kind."""
        return self.token.label

    def initial_value(self, key: KeyId) -> str:
        """The reference data a key was issued with (PIN or collation value)."""
        if key in CHANGEABLE:
            return self.pins[key]
        if key in (KeyId.TEXT_A, KeyId.VISUAL_A):
            return self.person.my_number
        if key is KeyId.VISUAL_BIRTH:
            return era_yymmdd(self.person.birth_date)
        if key in BLOCKED_FROM_ISSUE:
            return ""  # never matches: the key is blocked anyway
        return collation_b(self.person.birth_date, self.expiry_date.year, self.security_code)

    def private_key(self, which: str) -> rsa.RSAPrivateKey:
        """One of the profile's keys: ``auth``, ``sign`` or one of ``CARD_INFO_KEYS``."""
        if which == "auth":
            pem = self.auth_key_pem
        elif which == "sign":
            pem = self.sign_key_pem
        else:
            pem = self.card_info_key_pems[which]
        try:
            return _load_key(pem)
        except ValueError as exc:
            raise ProfileError(f"profile {which} key: {exc}") from None

    def cvca_keys(self) -> list[tuple[str, bytes, rsa.RSAPublicKey]]:
        """The profile's test CVCA keys: (``text``/``visual``, 16-byte key id, public key)."""
        return [
            (ap, self.key_ids[f"{ap}_cvca"], self.private_key(f"{ap}_cvca").public_key())
            for ap in ("text", "visual")
        ]

    # --- JSON ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``profile.json``): seed, token, ATR and certificates as PEM."""

        def pem(der: bytes) -> str:
            cert = x509.load_der_x509_certificate(der)
            return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

        return {
            "format": FORMAT,
            "seed": self.seed,
            "person_index": self.person_index,
            "token": self.token.value,
            "has_sign_cert": self.has_sign_cert,
            "atr": self.atr.hex().upper(),
            "certificates": {
                "auth": pem(self.auth_cert),
                "auth_ca": pem(self.auth_ca_cert),
                "sign": pem(self.sign_cert),
                "sign_ca": pem(self.sign_ca_cert),
            },
            "keys": {
                "auth": self.auth_key_pem.decode("ascii"),
                "sign": self.sign_key_pem.decode("ascii"),
                **{k: self.card_info_key_pems[k].decode("ascii") for k in CARD_INFO_KEYS},
            },
            "key_ids": {k: self.key_ids[k].hex().upper() for k in KEY_IDS},
            "pins": {k.value: v for k, v in self.pins.items()},
            "max_tries": {k.value: v for k, v in self.max_tries.items()},
            "person": {
                "name": self.person.name,
                "address": self.person.address,
                "birth_date": self.person.birth_date.isoformat(),
                "sex": self.person.sex,
                "my_number": self.person.my_number,
            },
            "visual": {
                "expiry_date": self.expiry_date.isoformat(),
                "security_code": self.security_code,
                "municipality_code": self.municipality_code,
            },
            "text_long_form": self.text_long_form,
            "dump": {
                "source": self.dump_source,
                "files": {
                    k: base64.b64encode(v).decode("ascii")
                    for k, v in sorted(self.dump_files.items())
                },
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> CardProfile:
        """Parse ``profile.json`` content; any defect is a ``ProfileError``."""
        try:
            if data.get("format") != FORMAT:
                raise ProfileError(
                    f"unsupported profile format {data.get('format')!r}"
                    " (re-create the profile with `jpki sim init`)"
                )
            certs = data["certificates"]
            keys = data["keys"]
            person = data["person"]
            visual = data["visual"]

            def der(pem: str) -> bytes:
                cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
                return cert.public_bytes(serialization.Encoding.DER)

            pins = {KeyId(k): _str(v) for k, v in data.get("pins", DEFAULT_PINS).items()}
            max_tries = dict(DEFAULT_MAX_TRIES)
            for k, v in data.get("max_tries", {}).items():
                if not isinstance(v, int) or not 1 <= v <= 15:
                    raise ProfileError(f"max_tries.{k} must be an integer 1..15")
                max_tries[KeyId(k)] = v
            missing = [k.value for k in CHANGEABLE if k not in pins]
            if missing:
                raise ProfileError(f"profile pins missing: {', '.join(sorted(missing))}")
            sp = SimPerson(
                name=_str(person["name"]),
                address=_str(person["address"]),
                birth_date=date.fromisoformat(person["birth_date"]),
                sex=int(person["sex"]),
                my_number=_digits(person["my_number"], 12, "person.my_number"),
            )
            code = _digits(visual["security_code"], 4, "visual.security_code")
            ids = {k: bytes.fromhex(_str(data["key_ids"][k])) for k in KEY_IDS}
            for k, v in ids.items():
                if len(v) != 16:
                    raise ProfileError(f"key_ids.{k} must be 16 bytes")
            dump = data.get("dump") or {}
            dump_files = {
                _str(k): base64.b64decode(_str(v), validate=True)
                for k, v in (dump.get("files") or {}).items()
            }
            unknown = set(dump_files) - DUMP_FILES
            if unknown:
                raise ProfileError(f"dump.files: unknown file(s) {', '.join(sorted(unknown))}")
            profile = cls(
                auth_cert=der(certs["auth"]),
                auth_ca_cert=der(certs["auth_ca"]),
                sign_cert=der(certs["sign"]),
                sign_ca_cert=der(certs["sign_ca"]),
                auth_key_pem=_str(keys["auth"]).encode("ascii"),
                sign_key_pem=_str(keys["sign"]).encode("ascii"),
                card_info_key_pems={k: _str(keys[k]).encode("ascii") for k in CARD_INFO_KEYS},
                key_ids=ids,
                person=sp,
                expiry_date=date.fromisoformat(visual["expiry_date"]),
                security_code=code,
                municipality_code=_digits(
                    visual.get("municipality_code", "13101"), 5, "visual.municipality_code"
                ),
                pins=pins,
                max_tries=max_tries,
                token=TokenKind(data.get("token", "card")),
                has_sign_cert=bool(data.get("has_sign_cert", True)),
                atr=bytes.fromhex(data.get("atr", DEFAULT_ATR.hex())),
                text_long_form=bool(data.get("text_long_form", False)),
                seed=data.get("seed"),
                person_index=data.get("person_index"),
                dump_files=dump_files,
                dump_source=dump.get("source"),
            )
        except ProfileError:
            raise
        except KeyError as exc:
            raise ProfileError(f"profile.json lacks the field {exc.args[0]!r}") from None
        except (ValueError, TypeError, AttributeError, UnicodeError) as exc:
            raise ProfileError(f"profile.json is malformed: {exc}") from None
        return profile


@functools.lru_cache(maxsize=64)
def _load_key(pem: bytes) -> rsa.RSAPrivateKey:
    # Parsing (with OpenSSL's key check) costs ~50 ms; simulator sessions reopen profiles often.
    try:
        key = serialization.load_pem_private_key(pem, None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError("not a valid PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA key")
    return key


def _str(v: object) -> str:
    if not isinstance(v, str):
        raise TypeError(f"expected a string, got {type(v).__name__}")
    return v


def _digits(v: object, n: int, what: str) -> str:
    s = _str(v)
    if len(s) != n or not s.isascii() or not s.isdigit():
        raise ProfileError(f"{what} must be {n} digits")
    return s


# --- mutable state -------------------------------------------------------------------------


@dataclass
class CardState:
    """Tries left per key and PINs changed since issue (``state.json``)."""

    tries_left: dict[KeyId, int]
    changed_pins: dict[KeyId, str] = field(default_factory=dict, repr=False)  # PINs: no repr

    @classmethod
    def fresh(cls, profile: CardProfile) -> CardState:
        """The state of a newly issued card: every counter full, blocked-from-issue keys at 0."""
        tries = {k: 0 if k in BLOCKED_FROM_ISSUE else profile.max_tries[k] for k in KeyId}
        return cls(tries_left=tries)

    def copy(self) -> CardState:
        """An independent copy (the dictionaries are copied)."""
        return CardState(dict(self.tries_left), dict(self.changed_pins))

    def current_pins(self, profile: CardProfile) -> dict[KeyId, str]:
        """Each changeable PIN as the card now holds it (a changed one wins over the issued one)."""
        return {k: self.changed_pins.get(k, profile.pins[k]) for k in KeyId if k in CHANGEABLE}

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``state.json``): tries left and changed PINs, by key name."""
        return {
            "format": STATE_FORMAT,
            "tries_left": {k.value: v for k, v in self.tries_left.items()},
            "changed_pins": {k.value: v for k, v in self.changed_pins.items()},
        }

    @classmethod
    def from_json(cls, data: Any, profile: CardProfile) -> CardState:
        """Parse ``state.json`` for ``profile``; anything malformed is a ``ProfileError``."""
        try:
            if data.get("format") != STATE_FORMAT:
                raise ProfileError(f"unsupported state format {data.get('format')!r}")
            tries = {KeyId(k): v for k, v in data["tries_left"].items()}
            changed = {KeyId(k): _str(v) for k, v in data.get("changed_pins", {}).items()}
        except ProfileError:
            raise
        except KeyError as exc:
            raise ProfileError(f"state.json lacks the field {exc.args[0]!r}") from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise ProfileError(f"state.json is malformed: {exc}") from None
        for key in KeyId:
            v = tries.setdefault(key, 0 if key in BLOCKED_FROM_ISSUE else profile.max_tries[key])
            if (
                not isinstance(v, int)
                or isinstance(v, bool)
                or not 0 <= v <= profile.max_tries[key]
            ):
                raise ProfileError(f"state.json: tries_left.{key.value} out of range")
        for key, pin in changed.items():
            if key not in CHANGEABLE or not pin_format_ok(key, pin.encode("ascii", "replace")):
                raise ProfileError(f"state.json: changed_pins.{key.value} is not a valid PIN")
        return cls(tries, changed)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file.

    ``os.replace`` alone protects against a crashing process; ``durable`` (fsync of the file
    and the directory) also against a crashing machine, at a few ms per write on real disks.
    """
    directory = path.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _dump(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False) + "\n").encode()


def _read_json(path: Path, what: str) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        hint = " (run `jpki sim reset` on the profile)" if what == "state" else ""
        raise ProfileError(f"{what} file missing: {path}{hint}") from None
    except OSError as exc:
        raise ProfileError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{what} file {path} is corrupt: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{what} file {path} is corrupt: not a JSON object")
    return data


class ProfileStore:
    """A profile directory: loads ``profile.json``, loads and saves ``state.json``.

    ``durable=False`` skips the fsyncs (still atomic against a crashing process): for
    benchmarks and throw-away profiles.
    """

    def __init__(self, path: Path | str, *, durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = durable
        if not self.path.is_dir():
            raise ProfileError(f"no simulator profile at {self.path} (create one: jpki sim init)")
        self.profile = CardProfile.from_json(_read_json(self.path / PROFILE_FILE, "profile"))

    @property
    def state_path(self) -> Path:
        """Where the mutable card state (``state.json``) is kept."""
        return self.path / STATE_FILE

    @property
    def faults_path(self) -> Path:
        """Where the fault configuration (``faults.json``) is kept."""
        return self.path / FAULTS_FILE

    @property
    def lock_path(self) -> Path:
        """The lock file that serialises writers of this profile."""
        return self.path / LOCK_FILE

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the profile's state lock (``fcntl.flock``, exclusive; blocks until free).

        Every read-modify-write of ``state.json`` runs under it, so two simulators (or a
        simulator and `jpki sim reset`) on one profile never lose each other's updates.
        """
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ProfileError(f"cannot open lock file {self.lock_path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def update(self, change: Callable[[CardState], None], *, durable: bool = True) -> CardState:
        """Re-read ``state.json``, apply ``change``, write it back, all under the lock."""
        with self.locked():
            state = self.load_state()
            change(state)
            self.save_state(state, durable=durable)
            return state

    def load_state(self) -> CardState:
        """Read and check the current state file (``ProfileError`` when malformed)."""
        return CardState.from_json(_read_json(self.state_path, "state"), self.profile)

    def save_state(self, state: CardState, *, durable: bool = True) -> None:
        """Persist ``state`` atomically; fsync'd only if this store and ``durable`` both say so.

        ``durable=False`` is for writes whose loss is harmless (see ``SimulatedCard._verify``).
        """
        try:
            write_atomic(self.state_path, _dump(state.to_json()), durable=self.durable and durable)
        except OSError as exc:
            raise ProfileError(f"cannot write state file {self.state_path}: {exc}") from exc

    def reset_state(self) -> CardState:
        """Restore every counter and the issued PINs."""
        state = CardState.fresh(self.profile)
        with self.locked():
            self.save_state(state)
        return state


def write_profile(path: Path | str, profile: CardProfile, *, force: bool = False) -> ProfileStore:
    """Create (or with ``force`` overwrite) a profile directory with a fresh state."""
    p = Path(path)
    target = p / PROFILE_FILE
    if target.exists() and not force:
        raise ProfileError(f"a profile already exists at {p} (use --force to overwrite)")
    if p.exists() and not p.is_dir():
        raise ProfileError(f"{p} exists and is not a directory")
    if p.is_dir() and not force and any(p.iterdir()):
        raise ProfileError(f"{p} is not empty (use --force to overwrite)")
    try:
        p.mkdir(parents=True, exist_ok=True)
        write_atomic(target, _dump(profile.to_json()))
        write_atomic(p / STATE_FILE, _dump(CardState.fresh(profile).to_json()))
        write_cvca_dir(p / CVCA_DIR, profile)
    except OSError as exc:
        raise ProfileError(f"cannot write profile {p}: {exc.strerror or exc}") from exc
    return ProfileStore(p)


def write_cvca_dir(directory: Path, profile: CardProfile) -> None:
    """The profile's test CVCA public keys as ``index.json`` + PEM files (like jpki.trust's)."""
    directory.mkdir(exist_ok=True)
    index = []
    for ap, kid, pub in profile.cvca_keys():
        name = f"cvca_{kid[:7].decode('ascii', 'replace')}.pem"
        pem = pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        write_atomic(directory / name, pem)
        index.append(
            {
                "key_id_hex": kid.hex().upper(),
                "key_id": key_id_text(kid),
                "file": name,
                "hierarchy": "other",
                "certifies": f"simulated {ap} AP EF 0004",
            }
        )
    write_atomic(directory / "index.json", (json.dumps(index, indent=2) + "\n").encode())
