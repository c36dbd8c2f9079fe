"""CVCA public keys of the card-info applications (券面入力補助AP / 券面事項確認AP).

A card-verifiable certificate (CVC) names its signing key by a 16-byte issuer key id and does
not carry the key, so the verifier must hold it. The six J-LIS keys (production ids ``5…``, the
JPKI test hierarchy's ``6…``) ship as package data, each pinned by the SHA-256 of its modulus;
callers add their own (e.g. a simulator profile's test CVCA) from a directory laid out the same
way: ``index.json`` (``key_id_hex``, ``file``) beside PEM public keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki.errors import UsageError

#: SHA-256 of each built-in key's raw 256-byte modulus (from the J-LIS key table).
BUILTIN_MODULUS_SHA256: Mapping[str, str] = {
    "353030303032300805303031000000A8": (
        "318ab4a79346bbd993d36d31a4d766f02a239f36b10bc323458242130f927a97"
    ),
    "35303030303233080530303100000000": (
        "bb96cc1dc6502005661961f0a45ed843d007c69e3ce167eceb6b1abd5333a932"
    ),
    "35303030303333080530303100000000": (
        "409655d477547d83cbe182385acb1ea83c9828eb6e5b8bba90957c339b5f30f7"
    ),
    "363030303032300805303031000000A8": (
        "218018727ce0d4955b0b40f468eb131d5e8375ee4a2aa58dabda524b19d29a39"
    ),
    "36303030303233080530303100000000": (
        "df70444dbe6841ec03267c25cf1bd35ff30ef8044da34ff5eedd0719e6f14530"
    ),
    "36303030303333080530303100000000": (
        "690db1b2d7b9994764a81982bc1e4cd76d9e92d0a33a895b2e71a0be8356f1ae"
    ),
}

KEY_ID_LEN = 16
# index.json and the PEM files are small; anything bigger is not a key directory.
_MAX_FILE = 1 << 20


def key_id_text(key_id: bytes) -> str:
    """``5000033/001`` for the 16-byte id ``35303030303333 0805 303031 00000000``."""
    if len(key_id) == KEY_ID_LEN and key_id[7:9] == b"\x08\x05":
        head, tail = key_id[:7], key_id[9:12]
        if head.isdigit() and tail.isdigit():
            return f"{head.decode()}/{tail.decode()}"
    return key_id.hex().upper()


def hierarchy_of(key_id: bytes) -> str:
    """``production`` (ids beginning ``5``), ``test`` (``6``) or ``other`` (a caller's own)."""
    return {0x35: "production", 0x36: "test"}.get(key_id[0] if key_id else -1, "other")


@dataclass(frozen=True)
class CvcaKey:
    """One CVCA public key and the 16-byte key id that CVCs name it by."""

    key_id: bytes
    public_key: rsa.RSAPublicKey
    certifies: str = ""

    @property
    def key_id_text(self) -> str:
        """The key id as text (``5000033/001``, hex when not that shape)."""
        return key_id_text(self.key_id)

    @property
    def hierarchy(self) -> str:
        """``production``, ``test`` or ``other``, from the key id's first digit."""
        return hierarchy_of(self.key_id)

    def modulus_sha256(self) -> str:
        """SHA-256 of the modulus's big-endian bytes, in hex (how built-in keys are pinned)."""
        n = self.public_key.public_numbers().n
        return hashlib.sha256(n.to_bytes((n.bit_length() + 7) // 8, "big")).hexdigest()

    def public_key_pem(self) -> str:
        """The public key as a PEM SubjectPublicKeyInfo."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")


def _key_from_pem(data: bytes, where: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{where}: not a PEM public key ({exc})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise UsageError(f"{where}: not an RSA public key")
    return key


def _parse_index(raw: bytes, where: str) -> list[Mapping[str, Any]]:
    try:
        entries = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: index.json is not JSON ({exc})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f"{where}: index.json must be a list of objects")
    return entries


def _key_id(entry: Mapping[str, Any], where: str) -> bytes:
    text = entry.get("key_id_hex")
    try:
        key_id = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        key_id = b""
    if len(key_id) != KEY_ID_LEN:
        raise UsageError(f"{where}: key_id_hex must be {KEY_ID_LEN} bytes of hex")
    return key_id


def _file_name(entry: Mapping[str, Any], where: str) -> str:
    name = entry.get("file")
    # Only a plain file name beside index.json: no path that leaves the directory.
    if not isinstance(name, str) or not name or Path(name).name != name or name.startswith("."):
        raise UsageError(f"{where}: 'file' must be a file name in the same directory")
    return name


def load_cvca_keys(directory: str | Path) -> tuple[CvcaKey, ...]:
    """Keys from a directory with ``index.json`` and PEM public keys (a caller's own trust)."""
    base = Path(directory)
    index = base / "index.json"
    where = str(base)
    try:
        if not index.is_file() or index.stat().st_size > _MAX_FILE:
            raise UsageError(f"{where}: no index.json (a regular file) in the CVCA key directory")
        entries = _parse_index(index.read_bytes(), where)
        out = []
        for entry in entries:
            key_id = _key_id(entry, where)
            path = base / _file_name(entry, where)
            if not path.is_file() or path.stat().st_size > _MAX_FILE:
                raise UsageError(f"{where}: {path.name} is not a regular file")
            key = _key_from_pem(path.read_bytes(), f"{where}/{path.name}")
            out.append(CvcaKey(key_id, key, str(entry.get("certifies", ""))))
    except OSError as exc:
        raise UsageError(f"cannot read CVCA keys in {where}: {exc.strerror or exc}") from None
    return tuple(out)


_BUILTIN: tuple[CvcaKey, ...] | None = None


def builtin_cvca_keys() -> tuple[CvcaKey, ...]:
    """The six J-LIS CVCA keys shipped with jpki, each checked against its pinned modulus."""
    global _BUILTIN
    if _BUILTIN is None:
        pkg = resources.files("jpki.trust") / "cvca_keys"
        entries = _parse_index(pkg.joinpath("index.json").read_bytes(), "built-in CVCA keys")
        keys = []
        for entry in entries:
            key_id = _key_id(entry, "built-in CVCA keys")
            pem = pkg.joinpath(_file_name(entry, "built-in")).read_bytes()
            key = _key_from_pem(pem, "built-in")
            item = CvcaKey(key_id, key, str(entry.get("certifies", "")))
            pin = BUILTIN_MODULUS_SHA256.get(key_id.hex().upper())
            if pin is None or item.modulus_sha256() != pin:
                raise RuntimeError(f"built-in CVCA key {item.key_id_text} does not match its pin")
            keys.append(item)
        if len(keys) != len(BUILTIN_MODULUS_SHA256):
            raise RuntimeError("built-in CVCA key set is incomplete")
        _BUILTIN = tuple(keys)
    return _BUILTIN


class CvcaKeyring:
    """CVCA keys by their full 16-byte id: the built-in ones plus any the caller adds."""

    def __init__(self, keys: Iterable[CvcaKey] = (), *, builtin: bool = True) -> None:
        self._keys: dict[bytes, CvcaKey] = {}
        for key in (*(builtin_cvca_keys() if builtin else ()), *keys):
            self._keys[key.key_id] = key

    def get(self, key_id: bytes) -> CvcaKey | None:
        """The key for this exact id (all 16 bytes compared), or None: "not checked"."""
        return self._keys.get(bytes(key_id))

    def __iter__(self) -> Any:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)
