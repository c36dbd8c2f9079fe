"""The six J-LIS JPKI root certificates (2015, 2019, 2023; signing and authentication).

Shipped as package data like a CA bundle and pinned by SHA-256 fingerprint: a corrupted or
substituted file is refused at load. All generations of one CA share a DN, so path building
picks the issuer by key identifier or signature, never by name.
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

from jpki.cert import JpkiCertificate

Purpose = Literal["sign", "auth", "any"]

#: file name → SHA-256 fingerprint (hex, upper case), from J-LIS's published table.
JLIS_ROOT_FINGERPRINTS: dict[str, str] = {
    "sign_ca_2015.pem": "19645405A1FE14377434BD55957628AC4038557C542403A2243F21C706FC9355",
    "sign_ca_2019.pem": "79679C33E4CC9319440F1AD120A597FF1844E2EF217063ADB176966FD5E6FBEB",
    "sign_ca_2023.pem": "D227F6CDE11D35C5252178F106F843D24651944975413B539FA2FB68DBFA365F",
    "auth_ca_2015.pem": "4DCFC4CA0AAF9FB2A3081B3F0C991C320B3ACC008667A341EEAEC5AF1D58CA7D",
    "auth_ca_2019.pem": "0D98DE47FC11B7F67126874B7028B6026A803D2638D6EDFE53176953961FADE6",
    "auth_ca_2023.pem": "64114F29620C24ED2631D46476A040E7EE740D956089C00B036A6A8118C322B5",
}

_CACHE: dict[str, JpkiCertificate] = {}


def _load(name: str) -> JpkiCertificate:
    cert = _CACHE.get(name)
    if cert is None:
        data = (resources.files("jpki.trust") / "jlis_roots" / name).read_bytes()
        cert = JpkiCertificate.load(data)
        if cert.fingerprint_sha256.hex().upper() != JLIS_ROOT_FINGERPRINTS[name]:
            raise RuntimeError(f"built-in J-LIS root {name} does not match its pinned fingerprint")
        _CACHE[name] = cert
    return cert


def jlis_roots(purpose: Purpose = "any") -> tuple[JpkiCertificate, ...]:
    """The built-in J-LIS roots for ``sign``, ``auth`` or ``any`` purpose, oldest first."""
    if purpose not in ("sign", "auth", "any"):
        from jpki.errors import UsageError

        raise UsageError(f"unknown purpose {purpose!r} (sign, auth or any)")
    names = sorted(JLIS_ROOT_FINGERPRINTS, key=lambda n: (n[:4] != "sign", n))
    return tuple(_load(n) for n in names if purpose == "any" or n.startswith(purpose))
