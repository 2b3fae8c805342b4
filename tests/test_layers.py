"""The package's layers, read from its imports (module level and inside functions; ``TYPE_CHECKING`` blocks aside).

From the bottom: ``errors``/``files`` → ``symmetry`` → ``methods`` → ``models`` → ``testing`` → ``harness`` →
``apps`` → ``cli``. A module imports its own layer or the ones below it; an application never imports another;
no two modules import each other, directly or round a longer loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "equinlp"
LAYERS = ("foundation", "symmetry", "methods", "models", "testing", "harness", "apps", "entrance")
FOUNDATION = {"equinlp.errors", "equinlp.files"}
ENTRANCE = {"equinlp", "equinlp.cli", "equinlp.__main__"}
ROOT_MODULES = FOUNDATION | ENTRANCE  # the package root is an entrance: these and the layer folders, nothing else


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> str:
    if module in FOUNDATION:
        return "foundation"
    if module in ENTRANCE:
        return "entrance"
    return module.split(".")[1]


def app(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "apps" else None


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(module: str) -> set[str]:
    """The equinlp modules ``module`` imports (``from pkg import sub`` counts as ``pkg.sub`` when sub is a module)."""
    tree = ast.parse(MODULES[module].read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node) for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("equinlp")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("equinlp") and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub != "equinlp.__version__":  # the package's version string, not its facade
                    found.add(sub if sub in MODULES else node.module)
    found.discard(module)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def test_the_package_root_is_an_entrance():
    at_root = {m for m in MODULES if m.count(".") == 1 and not (PACKAGE / m.split(".")[1]).is_dir()} | {"equinlp"}
    assert at_root <= ROOT_MODULES, f"modules at the package root besides the entrance: {sorted(at_root - ROOT_MODULES)}"
    assert {layer(m) for m in MODULES} <= set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    own = LAYERS.index(layer(module))
    upward = {m for m in GRAPH[module] if LAYERS.index(layer(m)) > own}
    sideways = {m for m in GRAPH[module] if app(m) and app(module) and app(m) != app(module)}
    assert not upward, f"{module} ({layer(module)}) imports a layer above it: {sorted(upward)}"
    assert not sideways, f"application {module} imports another application: {sorted(sideways)}"


def test_no_import_cycles():
    """Tarjan's strongly connected components over the import graph: every one is a single module."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in MODULES:
                continue
            if w not in index:
                visit(w)
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
                cycles.append(sorted(component))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"
