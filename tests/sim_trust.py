"""The simulator profile's own test CVCA keys, as `jpki sim show --json` lists them.

Until a profile lists ``cvca_keys`` its CVCs cannot chain to any key, and the honest integrity
answer for its records is ``indeterminate``; once it does, the client must say ``valid``.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from jpki.card import IntegrityStatus
from jpki.cli.smoke import profile_cvca_keys
from jpki.trust.cvca import CvcaKeyring


def sim_keyring(profile: Path) -> CvcaKeyring:
    return CvcaKeyring(profile_cvca_keys(profile))


def lists_cvca_keys(profile: Path) -> bool:
    return bool(profile_cvca_keys(profile))


def expected_integrity(profile: Path) -> IntegrityStatus:
    return IntegrityStatus.VALID if lists_cvca_keys(profile) else IntegrityStatus.INDETERMINATE


def write_cvca_dir(profile: Path, out: Path) -> Path:
    """A --cvca-keys DIR (index.json + PEM) holding the profile's test CVCA keys."""
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for i, key in enumerate(profile_cvca_keys(profile)):
        name = f"cvca_{i}.pem"
        pem = key.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (out / name).write_bytes(pem)
        index.append({"key_id_hex": key.key_id.hex().upper(), "file": name})
    (out / "index.json").write_text(json.dumps(index))
    return out
