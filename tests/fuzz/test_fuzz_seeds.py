"""Run every fuzz harness's target over its seed corpus and deterministic mutations of it.

Plain Python, no atheris: CI exercises the same assertions the fuzzer checks (only
``JpkiError`` may escape a parser), so a crash found by fuzzing and added to a corpus stays
fixed.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
HARNESSES = sorted(p.stem for p in HERE.glob("fuzz_*.py"))


def _load(stem: str) -> ModuleType:
    return importlib.import_module(stem)


def mutations(data: bytes, seed: str, n: int = 24) -> Iterator[bytes]:
    """Truncations, then ``n`` random single-byte flips, inserts and deletions."""
    for k in range(8):
        yield data[: len(data) * k // 8]
    rng = random.Random(seed)
    for _ in range(n):
        if not data:
            yield bytes([rng.randrange(256)])
            continue
        i = rng.randrange(len(data))
        op = rng.randrange(3)
        if op == 0:
            yield data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]
        elif op == 1:
            yield data[:i] + bytes([rng.randrange(256)]) + data[i:]
        else:
            yield data[:i] + data[i + 1 :]


def test_every_harness_has_seeds() -> None:
    assert HARNESSES, "no harnesses found"
    for stem in HARNESSES:
        name = _load(stem).NAME
        assert sorted((CORPUS / name).glob("*")), f"{stem}: no seeds in corpus/{name}"


@pytest.mark.parametrize("stem", HARNESSES)
def test_seeds(stem: str) -> None:
    mod = _load(stem)
    for seed in sorted((CORPUS / mod.NAME).iterdir()):
        mod.target(seed.read_bytes())


@pytest.mark.parametrize("stem", HARNESSES)
def test_mutated_seeds(stem: str) -> None:
    mod = _load(stem)
    for seed in sorted((CORPUS / mod.NAME).iterdir()):
        for data in mutations(seed.read_bytes(), f"{stem}/{seed.name}"):
            mod.target(data)


def test_guard_lets_only_jpki_errors_pass() -> None:
    """The harness wrapper must not swallow a crash: that is the one thing it must not do."""
    from _harness import guarded

    from jpki.errors import CrlError

    @guarded
    def raises_jpki(data: bytes) -> None:
        raise CrlError("bad")

    @guarded
    def raises_other(data: bytes) -> None:
        raise IndexError("crash")

    raises_jpki(b"")
    with pytest.raises(IndexError):
        raises_other(b"")


@st.composite
def _mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a hypothesis-chosen slice replaced by hypothesis-chosen bytes."""
    data = draw(st.sampled_from(seeds)) if seeds else b""
    start = draw(st.integers(0, len(data)))
    end = draw(st.integers(start, min(len(data), start + 8)))
    return data[:start] + draw(st.binary(max_size=8)) + data[end:]


@pytest.mark.parametrize("stem", HARNESSES)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_hypothesis_mutations(stem: str, data: st.DataObject) -> None:
    mod = _load(stem)
    seeds = [p.read_bytes() for p in sorted((CORPUS / mod.NAME).iterdir())]
    mod.target(data.draw(_mutated(seeds) | st.binary(max_size=64)))
