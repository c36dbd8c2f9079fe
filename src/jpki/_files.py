"""Reading files from directories someone else fills: regular files only, bounded in size.

A FIFO named ``ca.pem`` blocks ``open()`` forever, a symlink to ``/dev/zero`` reads until
memory runs out, a socket or device is never a certificate. Everything that scans a
directory (``--trust`` directories, monitored certificate directories, CRL directories) and
everything that reads a named input file goes through here.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from jpki.errors import UsageError

log = logging.getLogger("jpki.files")

#: Size limits per kind of input (bytes). A JPKI certificate is ~1.5 KB; a bundle of every
#: J-LIS generation a few dozen KB; the biggest real CRLs a few hundred MB.
MAX_CERT_FILE = 4 * 1024 * 1024
MAX_CRL_FILE = 2 * 1024 * 1024 * 1024
MAX_MANIFEST_FILE = 256 * 1024 * 1024
MAX_INPUT_FILE = 256 * 1024 * 1024


class InputFileError(UsageError):
    """A named input file that is not a regular file, is too big, or cannot be read."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """True for a regular file (symlinks followed); never opens it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def read_regular_file(path: str | os.PathLike[str], *, max_bytes: int = MAX_INPUT_FILE) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, else ``InputFileError``.

    Opened non-blocking (a FIFO does not wait for a writer), checked with ``fstat`` on the
    open descriptor (no race with a swapped symlink), read to at most ``max_bytes + 1``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputFileError(f"cannot read {os.fsdecode(path)}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputFileError(f"{os.fsdecode(path)} is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > max_bytes:
            raise InputFileError(
                f"{os.fsdecode(path)} is {st.st_size} bytes, over the limit of {max_bytes}"
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:  # grew while we read it
            raise InputFileError(f"{os.fsdecode(path)} is over the limit of {max_bytes} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise InputFileError(f"cannot read {os.fsdecode(path)}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def scan_directory(
    directory: str | os.PathLike[str],
    suffixes: Iterable[str],
    *,
    warn: Callable[[str], None] | None = None,
) -> list[Path]:
    """Regular files in ``directory`` (not recursive) whose suffix is in ``suffixes``, by name.

    Anything else with a matching name (FIFO, socket, device, a symlink to one, a dangling
    symlink, a subdirectory) is skipped with a warning through ``warn`` (default: the
    ``jpki.files`` logger), so one planted file cannot hang or exhaust the scan.
    """
    wanted = {s.lower() for s in suffixes}
    say = warn or log.warning
    out: list[Path] = []
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise InputFileError(
            f"cannot list {os.fsdecode(directory)}: {exc.strerror or exc}"
        ) from None
    for entry in entries:
        path = Path(entry.path)
        if path.suffix.lower() not in wanted:
            continue
        try:
            mode = os.stat(entry.path).st_mode
        except OSError as exc:
            say(f"skipping {path}: {exc.strerror or exc}")
            continue
        if not stat.S_ISREG(mode):
            say(f"skipping {path}: {_kind(mode)}")
            continue
        out.append(path)
    return out
