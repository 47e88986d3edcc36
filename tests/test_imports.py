"""The package import graph: who may import whom, checked over every import in baas/ and cli/
(module level, function-local and under TYPE_CHECKING alike).

Each package has a layer; a package imports only packages in lower layers, or packages earlier in
its own layer's order. An import against that order is a cycle waiting to happen (most already
are one). The edges in KNOWN_BREAKS do so today; the list may only shrink: an entry that is no
longer needed fails the test, so whoever removes the import removes the entry.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. Within a layer, a package may import those before it in the tuple.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "config", "query", "loops", "logs"),  # no domain knowledge
    ("net", "db"),  # the guarded outbound client; pool, transactions, sqltree
    ("schema", "rules"),  # collections as data; the rule engine over the query engine
    ("jobs", "http"),  # the queue; request plumbing
    # services, each using only those before it
    ("records", "auth", "storage", "push", "runtime_settings", "realtime", "admin"),
    # the background loops; the bag every service is handed today; the generated document, which
    # reads the services' limits to describe them
    ("background", "context", "openapi"),
    ("app",),  # the composition root
    ("cli",),
)

# Imports against the layers today, each with its reason.
KNOWN_BREAKS: dict[tuple[str, str], str] = {
    # Services are handed the whole AppContext, which imports them to be built: the cycle
    # auth/context/records/runtime_settings (and every service with them) goes when each service
    # is given the collaborators it uses, built in app.py.
    ("records", "context"): "services take AppContext",
    ("auth", "context"): "services take AppContext",
    ("storage", "context"): "services take AppContext",
    ("push", "context"): "services take AppContext",
    ("realtime", "context"): "services take AppContext",
    ("background", "context"): "the background loops take AppContext",
    ("http", "context"): "http/request.py hands handlers the AppContext",
    # Things in the wrong place.
    ("records", "auth"): "Identity lives in auth/",
    ("http", "auth"): "the bearer check in http/ verifies with auth/",
    ("records", "storage"): "records/api.py serves file fields through storage/",
    ("auth", "runtime_settings"): "runtime settings that auth reads are defined next to push's",
    ("push", "runtime_settings"): "push reads its apps from runtime settings",
    ("schema", "rules"): "schema/service.py compiles rules to check a schema",
}


def _package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "cli":
        return "cli"
    if parts[0] != "baas" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> set[str]:
    """Every module the file at `path` imports (absolute names)."""
    module = path.relative_to(ROOT).with_suffix("").parts
    return imported_names(path.read_text(), module[:-1])


def imported_names(source: str, package: tuple[str, ...]) -> set[str]:
    """Every module `source` (a module of `package`) imports, wherever the statement sits."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def package_edges() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) package pairs, each with the files that make it."""
    edges: dict[tuple[str, str], list[str]] = {}
    for top in ("baas", "cli"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            source = "cli" if top == "cli" else rel.with_suffix("").parts[1]
            for name in _imports(path):
                target = _package(name)
                if target is not None and target != source and target != "__init__":
                    edges.setdefault((source, target), []).append(str(rel))
    return edges


def _rank() -> dict[str, tuple[int, int]]:
    return {p: (i, j) for i, layer in enumerate(LAYERS) for j, p in enumerate(layer)}


def _cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected sets of more than one package."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    reach = {p: _reachable(graph, p) for p in graph}
    groups = {frozenset(q for q in reach[p] if p in reach[q]) | {p} for p in graph}
    return sorted(sorted(g) for g in groups if len(g) > 1)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_every_package_has_a_layer() -> None:
    packages = {p for edge in package_edges() for p in edge}
    assert packages - set(_rank()) == set()


def test_imports_follow_the_layers() -> None:
    rank = _rank()
    breaks = {
        f"{a} -> {b} ({', '.join(sorted(set(files)))})"
        for (a, b), files in package_edges().items()
        if rank[a] <= rank[b] and (a, b) not in KNOWN_BREAKS
    }
    assert breaks == set(), "imports against the layers (see LAYERS in this file)"


def test_known_breaks_only_shrink() -> None:
    rank = _rank()
    edges = package_edges()
    gone = {edge for edge in KNOWN_BREAKS if edge not in edges or rank[edge[0]] > rank[edge[1]]}
    assert gone == set(), "no longer needed: remove from KNOWN_BREAKS"


def test_no_cycle_besides_the_known_breaks() -> None:
    assert _cycles(set(package_edges()) - set(KNOWN_BREAKS)) == []


def test_the_walk_sees_function_local_and_type_checking_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from baas.auth.identity import Identity\n"
        "def f():\n    from .sibling import x\n    import baas.db.pool\n"
    )
    names = imported_names(source, ("baas", "records"))
    assert {"baas.auth.identity", "baas.records.sibling", "baas.db.pool"} <= names
