"""The API reference (docs/api, Sphinx autodoc) covers every public module, and every public
module, class, function, method and property (cli/ included) has a docstring. CI builds it
with ``sphinx-build -W`` (.ci/run)."""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import jpki

INDEX = Path(__file__).resolve().parents[1] / "docs" / "api" / "index.rst"


def _public_modules(*, cli: bool = False) -> list[str]:
    names = []
    for m in pkgutil.walk_packages(jpki.__path__, "jpki."):
        parts = m.name.split(".")[1:]
        # Private modules are not API. cli/ is documented as commands (docs/cli.md), not in
        # the reference, but its public functions still carry docstrings.
        if any(p.startswith("_") for p in parts) or (parts[0] == "cli" and not cli):
            continue
        names.append(m.name)
    return names


def _has_doc(obj: object) -> bool:
    doc = (obj.__doc__ or "").strip()
    # A dataclass without a docstring gets its signature as __doc__: not documentation.
    return bool(doc) and not (inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("))


def _callable_of(raw: object) -> object | None:
    """The function behind a class attribute, or None when it is a value (field, enum member)."""
    if isinstance(raw, (staticmethod, classmethod)):
        return raw.__func__
    if isinstance(raw, property):
        return raw.fget
    if isinstance(raw, functools.cached_property):
        return raw.func
    return raw if inspect.isroutine(raw) else None


def _undocumented_members(cls: type) -> list[str]:
    """The public methods and properties ``cls`` itself defines that have no docstring.

    Only the class's own namespace counts: inherited members are documented where they are
    defined, dataclass-generated methods are dunders, and fields and enum members are values,
    not callables. An override of a documented base method shows the base's docstring in the
    reference (autodoc inherits it), so that counts as documented.
    """
    missing = []
    for attr, raw in vars(cls).items():
        if attr.startswith("_"):
            continue
        if inspect.isclass(raw) and raw.__qualname__.startswith(cls.__qualname__ + "."):
            missing += [] if _has_doc(raw) else [attr]
            missing += [f"{attr}.{m}" for m in _undocumented_members(raw)]
            continue
        target = _callable_of(raw)
        if target is None or _has_doc(target):
            continue
        bases = [_callable_of(vars(b)[attr]) for b in cls.__mro__[1:] if attr in vars(b)]
        if bases and bases[0] is not None and _has_doc(bases[0]):
            continue
        missing.append(attr)
    return missing


def test_reference_lists_every_public_module() -> None:
    listed = set(re.findall(r"^\.\. automodule:: (\S+)$", INDEX.read_text("utf-8"), re.M))
    assert set(_public_modules()) <= listed


def test_member_check_finds_what_is_undocumented() -> None:
    class Base:
        def shared(self) -> None:
            """Documented once, here."""

    class Sample(Base):
        """A class."""

        def documented(self) -> None:
            """Does it."""

        def bare(self) -> None:
            pass

        @property
        def bare_prop(self) -> int:
            return 1

        @staticmethod
        def bare_static() -> None:
            pass

        @classmethod
        def bare_cls(cls) -> None:
            pass

        @functools.cached_property
        def bare_cached(self) -> int:
            return 1

        def shared(self) -> None:
            pass

        def _private(self) -> None:
            pass

    assert sorted(_undocumented_members(Sample)) == [
        "bare",
        "bare_cached",
        "bare_cls",
        "bare_prop",
        "bare_static",
    ]


def test_every_public_callable_is_documented() -> None:
    missing = []
    for name in ["jpki", *_public_modules(cli=True)]:
        mod = importlib.import_module(name)
        if not (mod.__doc__ or "").strip():
            missing.append(name)
        for attr, obj in vars(mod).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not _has_doc(obj):
                missing.append(f"{name}.{attr}")
            if inspect.isclass(obj):
                missing += [f"{name}.{attr}.{m}" for m in _undocumented_members(obj)]
    assert not missing, f"{len(missing)} undocumented: {missing}"
