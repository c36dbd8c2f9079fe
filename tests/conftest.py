"""Shared pytest fixtures (owners add their fixtures here with small additive edits)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jpki.testing.pki import TestPki

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
def test_policy(test_pki: TestPki, test_pki_2015: TestPki) -> object:
    """A verification policy trusting both test CA generations, at 2026-06-01 UTC."""
    from datetime import UTC, datetime

    from jpki.cert import JpkiCertificate
    from jpki.policy import Policy

    anchors = tuple(
        JpkiCertificate.load(c.der)
        for p in (test_pki_2015, test_pki)
        for c in (p.sign_ca, p.auth_ca)
    )
    return Policy(anchors=anchors, at=datetime(2026, 6, 1, tzinfo=UTC))
