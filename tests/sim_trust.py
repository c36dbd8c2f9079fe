"""The simulator profile's own test CVCA keys, as `jpki sim show --json` lists them.

They are trusted only when passed (library keyring or `--cvca-keys DIR`): without them a
profile's records are ``indeterminate``, with them ``valid``.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from jpki.cli.smoke import profile_cvca_keys
from jpki.trust.cvca import CvcaKeyring


def sim_keyring(profile: Path) -> CvcaKeyring:
    keys = profile_cvca_keys(profile)
    assert keys, "the simulator profile lists no test CVCA key"
    return CvcaKeyring(keys)


def write_cvca_dir(profile: Path, out: Path) -> Path:
    """A --cvca-keys DIR (index.json + PEM) holding the profile's test CVCA keys."""
    out.mkdir(parents=True, exist_ok=True)
    keys = profile_cvca_keys(profile)
    assert keys, "the simulator profile lists no test CVCA key"
    index = []
    for i, key in enumerate(keys):
        name = f"cvca_{i}.pem"
        pem = key.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (out / name).write_bytes(pem)
        index.append({"key_id_hex": key.key_id.hex().upper(), "file": name})
    (out / "index.json").write_text(json.dumps(index))
    return out
