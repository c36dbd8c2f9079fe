"""Built-in trust: the J-LIS JPKI roots and the CVCA keys of the card-info applications.

Both are public data shipped inside the package and pinned by SHA-256. ``jlis_roots`` loads
:mod:`jpki.cert`; the CVCA half depends on the core only, so the card client may use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jpki.trust.cvca import CvcaKey, CvcaKeyring, builtin_cvca_keys, load_cvca_keys

if TYPE_CHECKING:
    from jpki.trust.jlis import JLIS_ROOT_FINGERPRINTS, jlis_roots

__all__ = [
    "JLIS_ROOT_FINGERPRINTS",
    "CvcaKey",
    "CvcaKeyring",
    "builtin_cvca_keys",
    "jlis_roots",
    "load_cvca_keys",
]


def __getattr__(name: str) -> Any:
    # The roots need the certificate model; load it only when they are asked for.
    if name in ("jlis_roots", "JLIS_ROOT_FINGERPRINTS"):
        from jpki.trust import jlis

        return getattr(jlis, name)
    raise AttributeError(name)
