"""The package's seams: fer_core's modules import each other without a cycle (issue 27)."""
from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[1] / "fer_core"


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the fer_core modules it imports anywhere in its file (module level or inside a function):
    `from .x import`, `from . import x`, `from fer_core.x import`, `from fer_core import x`, `import fer_core.x`.
    A name imported from the package itself (`from . import DataError`) is an edge to __init__."""
    modules = {p.stem for p in package.glob("*.py")}
    graph = {}
    for m in sorted(modules):
        edges = set()
        for node in ast.walk(ast.parse((package / f"{m}.py").read_text(), filename=f"{m}.py")):
            if isinstance(node, ast.ImportFrom):
                if node.level > 1 or (node.level == 0 and not (node.module or "").startswith(package.name)):
                    continue
                parts = (node.module or "").split(".")[1 if node.level == 0 else 0:]
                target = [p for p in parts if p]
                if target:
                    edges.add(target[0])
                else:  # from . import x, y / from fer_core import x: submodules, or names from __init__
                    edges |= {a.name if a.name in modules else "__init__" for a in node.names}
            elif isinstance(node, ast.Import):
                edges |= {a.name.split(".")[1] for a in node.names
                          if a.name.startswith(package.name + ".") and a.name.split(".")[1] in modules}
        graph[m] = {e for e in edges if e in modules and e != m}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_the_cycle_finder_finds_a_cycle(tmp_path):
    pkg = tmp_path / "fer_core"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def f():\n    from fer_core import c\n")
    (pkg / "c.py").write_text("import fer_core.a\n")
    (pkg / "d.py").write_text("from . import a\nfrom .c import y\n")
    assert cycles(import_graph(pkg)) == [["a", "b", "c"]]


def test_no_import_cycle_in_fer_core():
    assert cycles(import_graph()) == []


ROOT = PACKAGE.parent


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_re_export_lines_in_fer_core():
    """Callers import a name from the module that defines it: no `import x  # noqa: F401` kept for others."""
    found = [f"{p.name}:{i}" for p in sorted(PACKAGE.glob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1) if "noqa: F401" in line]
    assert found == []


def test_every_view_is_at_most_300_lines():
    assert {p.name: lines(p) for p in (ROOT / "views").glob("*.py") if lines(p) > 300} == {}


def test_every_fer_core_module_and_app_common_is_at_most_350_lines():
    files = [*PACKAGE.glob("*.py"), ROOT / "app_common.py"]
    assert {p.name: lines(p) for p in files if lines(p) > 350} == {}
