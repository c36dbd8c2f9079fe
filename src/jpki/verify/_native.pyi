"""Types of the optional compiled loop (native/verify.c); use it through jpki.verify.native."""

from collections.abc import Sequence
from typing import final

ABI: int

@final
class Key:
    """An RSA public key for ``verify_many`` (``ValueError`` if OpenSSL refuses it)."""

    def __init__(self, modulus: bytes, exponent: bytes) -> None: ...
    @property
    def size(self) -> int: ...

def verify_many(
    keys: Sequence[Key | None],
    plans: Sequence[tuple[int, int, bytes]],
    plan_of: Sequence[int],
    signatures: Sequence[bytes],
    datas: Sequence[bytes | None],
    digests: Sequence[bytes | None],
    /,
) -> list[int]: ...
def openssl_version() -> str: ...
