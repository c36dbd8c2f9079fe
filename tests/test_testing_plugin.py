"""The pytest plugin (jpki.testing.plugin) through pytester: docs/testing.md's worked example
runs as a user's test file would, loaded with ``-p`` (installed entry points refresh only on
reinstall); the entry point itself is declared in pyproject.toml."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    # The inner pytest runs in another directory: import this checkout's jpki, not another.
    import os

    monkeypatch.setenv(
        "PYTHONPATH", str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")
    )


def _example() -> str:
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    m = re.search(r"```python\n(# test_my_app\.py.*?)```", text, re.S)
    assert m, "docs/testing.md lost its worked example"
    return m.group(1)


def test_entry_point_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"]["pytest11"] == {"jpki": "jpki.testing.plugin"}


def test_worked_example_passes_and_wrong_expectations_fail(pytester: pytest.Pytester) -> None:
    """docs/testing.md's example passes; two wrong expectations fail (the fixtures model
    what was asked). One inner session for both: each costs a process and a PKI."""
    pytester.makepyfile(
        test_my_app=_example(),
        test_wrong="""
from jpki.revocation.policy import RevocationStatus, check_revocation

def test_good_card_is_not_revoked(jpki_card, jpki_pki):
    card = jpki_card()
    r = check_revocation(card.sign_cert, jpki_pki.sign_ca.jpki, crls=[jpki_pki.crl("sign")],
                         at=jpki_pki.now)
    assert r.status is RevocationStatus.REVOKED   # wrong on purpose

def test_tries(jpki_card):
    assert jpki_card(tries_left={"sign": 2}).tries_left("sign") == 5  # wrong on purpose
""",
    )
    # An installed jpki registers the plugin by entry point (pytest11); from a source tree
    # without fresh metadata it is named with -p. Naming it twice is a pytest error.
    installed = any(
        ep.value.startswith("jpki.testing.plugin")
        for ep in importlib.metadata.entry_points(group="pytest11")
    )
    args = [] if installed else ["-p", "jpki.testing.plugin"]
    result = pytester.runpytest_subprocess(*args, "-q", "-rf")
    result.assert_outcomes(passed=5, failed=2)
    result.stdout.fnmatch_lines(["*test_wrong.py::test_good_card_is_not_revoked*",
                                 "*test_wrong.py::test_tries*"])  # fmt: skip
