"""Plumbing shared by the harnesses: a target may only let ``JpkiError`` escape.

Each ``fuzz_*.py`` defines ``NAME`` (its corpus folder) and ``target(data: bytes) -> None``,
plain Python with no atheris import, so ``test_fuzz_seeds.py`` can run it in CI. Run as a
script, a harness hands ``target`` to atheris (``pip install -e '.[fuzz]'``).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from jpki.errors import JpkiError

CORPUS = Path(__file__).resolve().parent / "corpus"

Target = Callable[[bytes], None]


def guarded(fn: Target) -> Target:
    """Wrap a parser call: a ``JpkiError`` is the expected answer to bad bytes; the rest crash."""

    def target(data: bytes) -> None:
        with contextlib.suppress(JpkiError):
            fn(data)

    target.__name__ = fn.__name__
    target.__doc__ = fn.__doc__
    return target


def touch(obj: object, *names: str) -> None:
    """Read each attribute (lazy properties decode on access; that is where parsers fail)."""
    for name in names:
        getattr(obj, name)


def fuzz_main(name: str, target: Target) -> None:
    """Run ``target`` under atheris/libFuzzer; extra argv goes to libFuzzer.

    With no corpus directory given, new inputs go to a temporary directory and the committed
    seeds are read from ``corpus/<name>`` (the committed seeds are never written to).
    """
    import atheris

    atheris.instrument_all()
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        work = tempfile.mkdtemp(prefix=f"jpki-fuzz-{name}-")
        print(f"new corpus entries go to {work}", file=sys.stderr)
        argv += [work, str(CORPUS / name)]
    atheris.Setup(argv, target)
    atheris.Fuzz()
