"""Shared pytest fixtures (owners add their fixtures here with small additive edits)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jpki.testing.pki import TestPki

if TYPE_CHECKING:
    from pg_helpers import PgServer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def jlis_roots_dir() -> Path:
    """The real J-LIS CA certificates, as shipped inside the package (built-in trust)."""
    from importlib import resources

    path = Path(str(resources.files("jpki.trust") / "jlis_roots"))
    assert path.is_dir(), path
    return path


@pytest.fixture(scope="session")
def test_pki() -> TestPki:
    """The default deterministic test PKI (seed "jpki-test", generation 2023)."""
    return TestPki()


@pytest.fixture(scope="session")
def test_pki_2015() -> TestPki:
    """The older CA generation: same DNs, different keys (expired 2025-10-19, like the real one)."""
    return TestPki(generation=2015)


@pytest.fixture(scope="session")
def sim_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulator profile (seed "jpki-test", person 0) made once per session; do not modify."""
    from jpki.sim.create import create_profile

    path = tmp_path_factory.mktemp("sim") / "template"
    create_profile(path)
    return path


@pytest.fixture
def sim_profile(sim_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the session's simulator profile (own counters) for one test."""
    import shutil

    return Path(shutil.copytree(sim_template, tmp_path / "card"))


@pytest.fixture(scope="module")
def pki() -> TestPki:
    """Revocation tests: the 2023 generation issuing as of ``revocation_helpers.NOW``.

    (A module needing another clock, e.g. tests/test_ocsp.py, defines its own ``pki``.)
    """
    from revocation_helpers import NOW

    return TestPki(now=NOW)


@pytest.fixture(scope="module")
def pki_2015() -> TestPki:
    """Revocation tests: the 2015 generation (same CA DNs, other keys)."""
    from revocation_helpers import PKI_2015_NOW

    return TestPki(generation=2015, now=PKI_2015_NOW)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL server (tests/pg_helpers.py) for the whole session.

    Skips when PostgreSQL is not installed, except under CI=true, where that is a failure.
    Use ``pg_server.create_db()`` for a fresh database URL per test.
    """
    import os

    from pg_helpers import PgServer, PgUnavailable

    try:
        server = PgServer.start()
    except PgUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required under CI: {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield server
    finally:
        server.stop()
