"""A throwaway PostgreSQL server for tests (Debian's postgresql: initdb + pg_ctl).

``PgServer.start()`` makes a cluster in a temporary directory owned by the ``postgres`` user
(initdb refuses to run as root), listening on 127.0.0.1 on a free port; ``create_db()`` makes a
fresh database and returns its URL; ``stop()`` stops it by PID (``pg_ctl -m immediate``) and
removes the directory. ``pg_server`` in tests/conftest.py wraps this as a session fixture.

Without PostgreSQL installed: ``PgUnavailable`` (the fixture skips; under ``CI=true`` it fails).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


class PgUnavailable(RuntimeError):
    """PostgreSQL binaries (or the postgres user) are not there."""


def pg_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/*/bin with initdb (or initdb on PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PgUnavailable("PostgreSQL is not installed (no initdb)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres() -> list[str]:
    """Command prefix: run as the postgres user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise PgUnavailable("running as root without runuser")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        raise PgUnavailable("no postgres user to run the server as") from None
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PgServer:
    bin_dir: Path
    base: Path
    port: int
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.base / "data"

    @classmethod
    def start(cls) -> PgServer:
        bin_dir = pg_bin_dir()
        prefix = _as_postgres()
        base = Path(tempfile.mkdtemp(prefix="jpki-pg-"))
        base.chmod(0o755)
        if prefix:
            shutil.chown(base, "postgres", "postgres")
        server = cls(bin_dir, base, _free_port())
        try:
            server._run(
                prefix,
                "initdb",
                "-D",
                str(server.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            )
            opts = (
                f"-c listen_addresses=127.0.0.1 -c port={server.port} "
                f"-c unix_socket_directories={base} -c fsync=off -c max_connections=100"
            )
            server._run(
                prefix,
                "pg_ctl",
                "-D",
                str(server.data),
                "-w",
                "-t",
                "60",
                "-l",
                str(base / "log"),
                "-o",
                opts,
                "start",
            )
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return server

    def _run(self, prefix: list[str], tool: str, *args: str) -> None:
        proc = subprocess.run(
            [*prefix, str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.base,
        )
        if proc.returncode != 0:
            log = self.base / "log"
            extra = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr}{extra}")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_db(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._counter)}"
        self._run(
            _as_postgres(),
            "createdb",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            name,
        )
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(_as_postgres(), "pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
