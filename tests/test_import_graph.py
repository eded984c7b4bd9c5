"""The package's import graph: no cycles between modules, and no import from a lower layer to a higher one.

Layers, lowest first (imports may only point to the same or a lower layer):

    errors / settings / _optional / runtime / console  <  kb  <  attention  <  encoding  <  model
    <  training / baselines  <  integrations  <  demo  <  cli

The graph is read from the source with ``ast``: absolute and relative imports, those inside
functions included; ``if TYPE_CHECKING:`` blocks are skipped (they never run). Lazy imports by
name (``importlib.import_module("...")`` tables) are not imports of the module that holds them.
The package root ``kblam_integrations/__init__.py`` is the public facade over every layer, so
it has no layer of its own (it still takes part in the cycle check).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "kblam_integrations"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

LAYERS: dict[str, int] = {
    "errors": 0, "settings": 0, "_optional": 0, "runtime": 0, "console": 0, "memory": 0,
    "kb": 1,
    "attention": 2,
    "encoding": 3,
    "model": 4,
    "training": 5, "baselines": 5,
    "integrations": 6,
    "demo": 7,
    "cli": 8,
}

# The one exception, kept for the public API: ``KnowledgeBase.from_documents`` (a classmethod)
# extracts triples through the loaders and the spaCy extractor, whose
# ``TripleExtractor.to_knowledge_base`` in turn builds a ``KnowledgeBase``. The call is a lazy
# import inside the method; removing either convenience method would break user code.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset({
    ("kblam_integrations.kb.knowledge_base", "kblam_integrations.kb.loaders"),
})

Graph = dict[str, set[str]]


# ------------------------------------------------------------------ graph
def module_names(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package: dotted name -> file (a package is named by its ``__init__``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Import statements anywhere in ``tree`` except under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a module of the package (None: another package)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> Graph:
    """``module -> modules of the package it imports``."""
    modules = module_names(root, package)
    graph: Graph = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    full = ".".join(base + ([node.module] if node.module else []))
                else:
                    full = node.module or ""
                for alias in node.names:
                    sub = f"{full}.{alias.name}"
                    targets.append(sub if sub in modules else full)
            for target in targets:
                known = _known(target, modules)
                if known is not None and known != name:
                    graph[name].add(known)
    return graph


# ------------------------------------------------------------------ checks
def layer_of(module: str) -> int | None:
    """The layer rank of ``module``; None for the package facade. KeyError: a module with no layer."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    return LAYERS[parts[1]]


def layer_violations(graph: Graph, known: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    """Every edge that points from a lower layer to a higher one, as ``src (n) -> dst (m)``."""
    out = []
    for src in sorted(graph):
        for dst in sorted(graph[src]):
            if (src, dst) in known:
                continue
            a, b = layer_of(src), layer_of(dst)
            if a is not None and b is not None and b > a:
                out.append(f"{src} (layer {a}) -> {dst} (layer {b})")
    return out


def find_cycles(graph: Graph, known: frozenset[tuple[str, str]] = frozenset()) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of more than one module."""
    edges = {src: sorted(d for d in dsts if (src, d) not in known and d in graph) for src, dsts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    return [_cycle_in(component, edges) for component in components]


def _cycle_in(component: list[str], edges: dict[str, list[str]]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component (breadth first)."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in edges[v]:
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle in the component {component}")  # pragma: no cover


# ------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph()


def test_every_module_has_a_layer(graph):
    unranked = []
    for module in graph:
        try:
            layer_of(module)
        except KeyError:
            unranked.append(module)
    assert not unranked, f"give these modules a layer in LAYERS: {unranked}"


def test_no_import_cycles(graph):
    cycles = find_cycles(graph, KNOWN_VIOLATIONS)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_import_from_a_lower_layer_to_a_higher_one(graph):
    violations = layer_violations(graph, KNOWN_VIOLATIONS)
    assert not violations, "upward imports:\n" + "\n".join(violations)


def test_known_violations_still_exist(graph):
    gone = sorted(edge for edge in KNOWN_VIOLATIONS if edge[1] not in graph.get(edge[0], set()))
    assert not gone, f"these edges are gone: remove them from KNOWN_VIOLATIONS: {gone}"


def test_the_graph_sees_relative_function_level_imports_and_skips_type_checking(graph):
    # model_cache imports the shipped loader inside a function, and the model only under TYPE_CHECKING
    assert "kblam_integrations.model.shipped" in graph["kblam_integrations.integrations.model_cache"]
    assert "kblam_integrations.integrations.model_cache" in graph["kblam_integrations.integrations.runner"]
    assert "kblam_integrations.demo" not in graph["kblam_integrations.integrations.model_cache"]


def test_an_upward_edge_is_reported():
    synthetic = {"kblam_integrations.kb.triple": {"kblam_integrations.cli.app"}, "kblam_integrations.cli.app": set()}
    assert layer_violations(synthetic) == [
        "kblam_integrations.kb.triple (layer 1) -> kblam_integrations.cli.app (layer 8)"]
    assert layer_violations(synthetic, frozenset({("kblam_integrations.kb.triple", "kblam_integrations.cli.app")})) \
        == []


def test_a_cycle_is_reported():
    synthetic = {
        "kblam_integrations.demo": {"kblam_integrations.integrations.langchain"},
        "kblam_integrations.integrations.langchain": {"kblam_integrations.integrations.model_cache"},
        "kblam_integrations.integrations.model_cache": {"kblam_integrations.demo"},
        "kblam_integrations.errors": set(),
    }
    assert find_cycles(synthetic) == [["kblam_integrations.demo", "kblam_integrations.integrations.langchain",
                                       "kblam_integrations.integrations.model_cache", "kblam_integrations.demo"]]


def test_relative_imports_resolve_to_modules(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import mod\n")
    (pkg / "sub" / "mod.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..low import x\n"
        "def f():\n    from .. import low\n    import pkg.sub\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.sub"] == {"pkg.sub.mod"}
    assert graph["pkg.sub.mod"] == {"pkg.low", "pkg.sub"}
