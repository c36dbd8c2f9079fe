"""The API reference (docs/api, Sphinx autodoc) covers every public module, and every public
module, class and function has a docstring. CI builds it with ``sphinx-build -W`` (.ci/run)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import jpki

INDEX = Path(__file__).resolve().parents[1] / "docs" / "api" / "index.rst"


def _public_modules() -> list[str]:
    names = []
    for m in pkgutil.walk_packages(jpki.__path__, "jpki."):
        parts = m.name.split(".")[1:]
        # cli/ is documented as commands (docs/cli.md); private modules are not API.
        if any(p.startswith("_") for p in parts) or parts[0] == "cli":
            continue
        names.append(m.name)
    return names


def test_reference_lists_every_public_module() -> None:
    listed = set(re.findall(r"^\.\. automodule:: (\S+)$", INDEX.read_text("utf-8"), re.M))
    assert set(_public_modules()) <= listed


def test_every_public_module_class_and_function_is_documented() -> None:
    missing = []
    for name in ["jpki", *_public_modules()]:
        mod = importlib.import_module(name)
        if not (mod.__doc__ or "").strip():
            missing.append(name)
        for attr, obj in vars(mod).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            doc = (obj.__doc__ or "").strip()
            # A dataclass without a docstring gets its signature as __doc__: not documentation.
            if not doc or (inspect.isclass(obj) and doc.startswith(f"{obj.__name__}(")):
                missing.append(f"{name}.{attr}")
    assert not missing, missing
