"""Run ``verify_batch`` on a Dask cluster: ``verify_batch(items, executor=...)`` with
:func:`dask_executor`, or ``jpki verify batch --executor dask://HOST:PORT``.

``dask[distributed]`` is optional (``pip install 'jpki[dask]'``); results come back in
input order, the same as in process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Executor

from jpki.errors import UsageError

#: How long to wait for the scheduler (seconds).
CONNECT_TIMEOUT = 30.0


def parse_dask_address(value: str) -> str:
    """``dask://HOST:PORT`` (or ``tcp://HOST:PORT``) → the scheduler address ``tcp://HOST:PORT``."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("dask", "tcp") or not rest:
        raise UsageError(f"bad executor {value!r}: use dask://HOST:PORT")
    host, colon, port = rest.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"bad executor {value!r}: use dask://HOST:PORT")
    return f"tcp://{host}:{int(port)}"


@contextlib.contextmanager
def dask_executor(address: str, *, timeout: float = CONNECT_TIMEOUT) -> Iterator[Executor]:
    """A ``concurrent.futures.Executor`` on the Dask scheduler at ``address``; closed on exit."""
    try:
        from distributed import Client
    except ImportError:
        raise UsageError(
            "--executor dask://… needs dask[distributed] (pip install 'jpki[dask]')"
        ) from None
    try:
        client = Client(parse_dask_address(address), timeout=timeout)  # type: ignore[no-untyped-call]
    except OSError as exc:  # includes the TimeoutError of an unreachable scheduler
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        yield client.get_executor()  # type: ignore[no-untyped-call]
    finally:
        client.close()  # type: ignore[no-untyped-call]
