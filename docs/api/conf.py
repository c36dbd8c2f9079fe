"""Sphinx configuration for the jpki API reference (built from the docstrings).

Build: ``sphinx-build -W -b html docs/api build/api`` (CI does, warnings as errors).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import jpki  # noqa: E402

project = "jpki"
author = "jpki contributors"
copyright = "2026, jpki contributors"  # noqa: A001 - Sphinx's name for it
release = version = jpki.__version__
extensions = ["sphinx.ext.autodoc"]
# Each object once, in the module that defines it (packages re-export through __all__).
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Type hints name third-party and forward-referenced types Sphinx cannot always resolve.
nitpicky = False
suppress_warnings = ["autodoc.import_object"]
html_theme = "alabaster"
exclude_patterns: list[str] = []
