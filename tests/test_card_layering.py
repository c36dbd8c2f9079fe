"""ARCHITECTURE.md layering: imports point down only, for every package, and no cycles.

core ← transport ← card (sim on core); core ← cert ← trust ← revocation ← policy ← verify;
cli on top; testing beside everything, imported only by sim creation, smoke and conformance.
Every ``import``/``from … import`` in the module source counts, including the deferred ones
inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
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
    "jpki._sqlite",
    "jpki.checks",
    "jpki.oid",
    "jpki.wareki",
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


def _tree(name: str, *, but: Iterable[str] = ()) -> list[Path]:
    """Every module of package ``name`` (recursively), except the files in ``but``."""
    skip = {SRC / b for b in but}
    return sorted(p for p in (SRC / name).rglob("*.py") if p not in skip)


CERT = CORE | {"jpki.cert"}
TRUST = CERT | {"jpki.trust"}
REVOCATION = CERT | {"jpki.revocation"}
POLICY = TRUST | REVOCATION | {"jpki.policy"}
VERIFY = POLICY | {"jpki.verify"}
CLIENT = CORE | {"jpki.transport", "jpki.card"}
# Everything a command may use; only `jpki sim` (card creation) imports jpki.testing.
CLI = VERIFY | CLIENT | {"jpki.sim", "jpki.conformance", "jpki.cli", "jpki.documents"}
CLI |= {"jpki.service", "jpki.service_client"}
TESTING_USERS = ("cli/sim.py",)

# (layer, files, jpki modules they may import)
RULES: list[tuple[str, list[Path], set[str]]] = [
    ("core", _files(*(m.split(".")[1] for m in CORE)), CORE),
    ("transport", _files("transport"), CORE | {"jpki.transport"}),
    # The card client checks CVCs against CVCA keys: jpki.trust.cvca only (it is core-only).
    ("card", _files("card"), CORE | {"jpki.transport.base", "jpki.card", "jpki.trust.cvca"}),
    ("sim", [p for p in _files("sim") if p.name != "create.py"], CORE | {"jpki.sim"}),
    ("sim/create", _files("sim/create"), CORE | {"jpki.sim", "jpki.testing"}),
    ("cert", _files("cert"), CERT),
    # The model sits on its parts; the parts (raw DER, loading, kind rule, 基本4情報) on the core.
    ("cert/parts", _files(*(f"cert/{m}" for m in ("der", "load", "kind", "basic_info"))), CORE),
    ("trust", _files("trust"), TRUST),
    ("trust/cvca", [SRC / "trust" / "cvca.py"], CORE),
    ("revocation", _tree("revocation"), REVOCATION),
    ("policy", [SRC / "policy.py"], POLICY),
    ("verify", _tree("verify"), VERIFY),
    # It checks EF 0004 CVCs as the card client does: jpki.trust.cvca only.
    ("conformance", [SRC / "conformance.py"], CERT | CLIENT | {"jpki.trust.cvca"}),
    ("cli", _tree("cli", but=TESTING_USERS), CLI),
    ("cli/sim", [SRC / f for f in TESTING_USERS], CLI | {"jpki.testing"}),
    ("testing", _tree("testing"), CLI | {"jpki.testing"}),
    ("testing/pki", [SRC / "testing" / "pki.py"], CORE | {"jpki.cert"}),
    ("documents", _tree("documents"), VERIFY | CLIENT | {"jpki.documents"}),
    # The service sits above the relying-party layers, below the CLI, never on the test PKI.
    ("service", _tree("service"), VERIFY | {"jpki.service", "jpki.documents"}),
    # The card side of a login at a service: the card client plus HTTP, no verifier.
    ("service_client", [SRC / "service_client.py"], CLIENT | {"jpki.service_client"}),
    ("package", [SRC / "__init__.py"], set()),
    ("main", [SRC / "__main__.py"], {"jpki.cli"}),
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


def test_every_module_has_a_layer() -> None:
    # A new package must be placed in the picture (add its rule above), not slip past it.
    covered = {p for _name, files, _allowed in RULES for p in files}
    missing = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if p not in covered)
    assert not missing, missing


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


# --- import cycles -------------------------------------------------------------------------


def _graph(root: Path) -> dict[str, set[str]]:
    """module -> the modules of the same tree it imports (deferred imports included, imports
    under ``if TYPE_CHECKING:`` excluded: they never run)."""
    top = root.name
    names = {_module_name_in(root, p): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        out: set[str] = set()
        todo: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"), str(path))]
        while todo:
            node = todo.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    todo += child.orelse
                    continue
                if isinstance(child, ast.Import):
                    out.update(a.name for a in child.names)
                elif isinstance(child, ast.ImportFrom):
                    if child.level:
                        base = package.split(".")[: len(package.split(".")) - child.level + 1]
                        mod = ".".join([*base, child.module] if child.module else base)
                    else:
                        mod = child.module or ""
                    for alias in child.names:
                        sub = f"{mod}.{alias.name}"
                        out.add(sub if sub in names else mod)
                todo.append(child)
        graph[name] = {m for m in out if m in names and m != name and m.split(".")[0] == top}
    return graph


def _module_name_in(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def cycles(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(frozenset(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


#: Cycles known today, each to be removed from here when it is broken (the test insists).
KNOWN_CYCLES: set[frozenset[str]] = set()


def test_no_import_cycles() -> None:
    found = set(cycles(_graph(SRC)))
    assert not found - KNOWN_CYCLES, sorted(sorted(c) for c in found - KNOWN_CYCLES)
    gone = KNOWN_CYCLES - found
    assert not gone, f"cycle broken, remove it from KNOWN_CYCLES: {sorted(sorted(c) for c in gone)}"


def test_the_cycle_detector_sees_a_planted_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from demo.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import c\n")  # deferred, relative
    (pkg / "c.py").write_text("import demo.a\n")
    (pkg / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import demo.e\n"
    )
    (pkg / "e.py").write_text("import demo.d\n")  # d -> e only for typing: no cycle
    graph = _graph(pkg)
    assert graph["demo.sub.b"] == {"demo.c"} and graph["demo.d"] == set()
    assert cycles(graph) == [frozenset({"demo.a", "demo.sub.b", "demo.c"})]
    assert cycles({"x": {"y"}, "y": {"z"}, "z": set()}) == []
