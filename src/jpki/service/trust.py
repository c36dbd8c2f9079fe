"""Trust anchors and the database location for ``jpki serve`` and its helpers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from jpki._files import MAX_CERT_FILE, read_regular_file
from jpki.cert import JpkiCertificate
from jpki.errors import UsageError


def resolve_anchors(names: Sequence[str]) -> tuple[bytes, ...]:
    """``jlis`` (the built-in J-LIS roots) or certificate files; ``jlis`` if none given.

    The test PKI's CAs are passed as files (``jpki sim`` profiles carry them), so no test
    key material is trusted by a name typed on the command line.
    """
    out: list[bytes] = []
    for name in names or ("jlis",):
        if name == "jlis":
            from jpki.trust import jlis_roots

            out += [c.der for c in jlis_roots("any")]
            continue
        out.append(JpkiCertificate.load(read_regular_file(name, max_bytes=MAX_CERT_FILE)).der)
    seen: dict[bytes, None] = dict.fromkeys(out)
    return tuple(seen)


def default_data_dir() -> Path:
    env = os.environ.get("JPKI_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "jpki" / "service"


def database_url(db: str | None, data_dir: Path | None = None) -> str:
    """``db`` if given, else ``service.sqlite`` in the data directory (created if needed)."""
    if db:
        return db
    d = data_dir or default_data_dir()
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UsageError(f"cannot create data directory {d}: {exc.strerror or exc}") from None
    return str(d / "service.sqlite")
