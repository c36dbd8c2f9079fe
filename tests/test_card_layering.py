"""ARCHITECTURE.md layering: imports point down only (core ← transport ← card; sim on core).

Every ``import``/``from … import`` in the module source counts, including the deferred ones
inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "jpki"

CORE = {
    "jpki.apdu",
    "jpki.tlv",
    "jpki.errors",
    "jpki.secret",
    "jpki.digestinfo",
    "jpki.mynumber",
    "jpki._files",
}
# Third-party libraries the core and the card client may not pull in (the edge imports them).
TRANSPORT_LIBS = {"smartcard"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[str] = set()
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = (package or _module_name(path)).split(".")
                base = base[: len(base) - node.level + 1]
                out.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                out.add(node.module)
    return out


def _allowed(target: str, prefixes: set[str]) -> bool:
    return any(target == p or target.startswith(p + ".") for p in prefixes)


def _files(*names: str) -> list[Path]:
    files: list[Path] = []
    for name in names:
        p = SRC / name
        files += sorted(p.glob("*.py")) if p.is_dir() else [p.with_suffix(".py")]
    return files


# (files, jpki modules they may import)
RULES: list[tuple[str, list[Path], set[str]]] = [
    ("core", _files(*(m.split(".")[1] for m in CORE)), CORE),
    ("transport", _files("transport"), CORE | {"jpki.transport"}),
    ("card", _files("card"), CORE | {"jpki.transport.base", "jpki.card"}),
    ("sim", [p for p in _files("sim") if p.name != "create.py"], CORE | {"jpki.sim"}),
    ("sim/create", _files("sim/create"), CORE | {"jpki.sim", "jpki.testing"}),
    ("cert", _files("cert"), CORE),
    ("trust", _files("trust"), CORE | {"jpki.cert", "jpki.trust"}),
    ("trust/cvca", [SRC / "trust" / "cvca.py"], CORE),
    ("testing/pki", [SRC / "testing" / "pki.py"], CORE | {"jpki.cert"}),
    (
        "documents",
        _files("documents"),
        CORE
        | {"jpki.transport.base", "jpki.card", "jpki.cert", "jpki.trust", "jpki.revocation"}
        | {"jpki.verify", "jpki.documents"},
    ),
    # The service sits above the relying-party layers, below the CLI, never on the test PKI.
    (
        "service",
        _files("service"),
        CORE
        | {"jpki.service", "jpki.cert", "jpki.trust", "jpki.verify", "jpki.revocation"}
        | {"jpki.documents"},
    ),
]

#: Only this module of the service calls the verifiers and the revocation layer.
SERVICE_ADAPTER = SRC / "service" / "adapter.py"


def test_service_calls_the_library_through_its_adapter() -> None:
    bad = {
        f"{path.relative_to(SRC)} imports {target}"
        for path in _files("service")
        if path != SERVICE_ADAPTER
        for target in _imports(path)
        if _allowed(target, {"jpki.verify", "jpki.revocation", "jpki.documents"})
    }
    assert not bad, sorted(bad)


def test_pyhanko_only_in_documents_and_cli() -> None:
    # pyHanko is the `pdf` extra: verify/, revocation/ and the core must work without it.
    bad = {
        f"{path.relative_to(SRC)} imports {target}"
        for path in SRC.rglob("*.py")
        if path.relative_to(SRC).parts[0] not in ("documents", "cli")
        for target in _imports(path)
        if target == "pyhanko" or target.startswith("pyhanko.")
    }
    assert not bad, sorted(bad)
    assert any(t.startswith("pyhanko.") for t in _imports(SRC / "documents" / "pdf.py")), (
        "the checker must see documents/ importing pyhanko"
    )


@pytest.mark.parametrize(("layer", "files", "allowed"), RULES, ids=[r[0] for r in RULES])
def test_imports_point_down(layer: str, files: list[Path], allowed: set[str]) -> None:
    assert files, layer
    bad = {
        f"{path.relative_to(SRC)} imports {target}"
        for path in files
        for target in _imports(path)
        if target.startswith("jpki") and target != "jpki" and not _allowed(target, allowed)
    }
    assert not bad, sorted(bad)


@pytest.mark.parametrize("layer", ["core", "transport", "card", "sim"])
def test_no_transport_library_outside_its_module(layer: str) -> None:
    files = next(f for name, f, _ in RULES if name == layer)
    bad = {
        f"{path.relative_to(SRC)} imports {target}"
        for path in files
        if path.name != "pcsc.py"  # the one edge module that imports pyscard (lazily)
        for target in _imports(path)
        if _allowed(target, TRANSPORT_LIBS)
    }
    assert not bad, sorted(bad)


def test_the_checker_sees_violations(tmp_path: Path) -> None:
    # Guard against a checker that finds nothing: a deferred, a relative and a plain import.
    probe = SRC / "card" / "jpki_ap.py"
    found = _imports(probe)
    assert "jpki.card.protocol" in found and "jpki.transport.base" in found
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    from jpki.verify import signature\n")
    tree_imports = {
        n.module for n in ast.walk(ast.parse(fake.read_text())) if isinstance(n, ast.ImportFrom)
    }
    assert tree_imports == {"jpki.verify"}
    assert not _allowed("jpki.verify", CORE | {"jpki.transport.base", "jpki.card"})
    assert not _allowed("jpki.cardx", {"jpki.card"})
