"""The subpackages of lvo_core import one way, in pipeline order: a stage never reaches into a later one."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "lvo_core"
LAYERS = {"errors": 0, "fileio": 0, "hookpoints": 0, "identity": 0, "progress": 0, "sae": 1, "model": 2,
          "analysis": 3, "lvo": 4, "runs": 5, "toy": 6,
          "commands": 7, "cli": 8, "bench": 8, "__main__": 9}
LAZY_FORWARD: set[tuple[str, str]] = set()  # (module, later stage's module) it may import at call time: none


def stage(module: str) -> str:
    return module.split(".")[0]


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported lvo_core module relative to the package, imported at module level?) for every import in ``path``."""
    rel = path.relative_to(CORE).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    if parts[-1] == "__init__":
        package = parts[:-1]
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = base + (node.module.split(".") if node.module else [])
            names = [target] if node.module else [target + [alias.name] for alias in node.names]
            for name in names:
                if name:
                    found.append((".".join(name), id(node) in top_level))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lvo_core."):
            found.append((node.module.removeprefix("lvo_core."), id(node) in top_level))
    return found


MODULES = sorted(p for p in CORE.rglob("*.py") if "weights" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CORE)))
def test_imports_go_one_way(path: Path):
    me = ".".join(path.relative_to(CORE).with_suffix("").parts).removesuffix(".__init__")
    if me == "__init__":
        return
    assert stage(me) in LAYERS, f"{me}: a new top-level stage must be placed in LAYERS"
    for target, _ in imports(path):
        if stage(target) not in LAYERS or (me, target) in LAZY_FORWARD:
            continue
        assert LAYERS[stage(target)] <= LAYERS[stage(me)], (
            f"lvo_core.{me} imports lvo_core.{target}: stage '{stage(me)}' must not depend on the later "
            f"stage '{stage(target)}'")


def test_every_subpackage_says_what_it_is():
    for init in CORE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 200, f"{init.parent.name}/__init__.py needs a paragraph saying what the stage does"


def module_of(name: str) -> str | None:
    """The lvo_core module an import names: ``model.backend``, a package (``sae`` → its ``__init__``), or, for
    ``from .pkg import name``, the package when ``name`` is not a module of its own."""
    parts = name.split(".")
    for cut in (len(parts), len(parts) - 1):
        path = CORE.joinpath(*parts[:cut])
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return ".".join(parts[:cut])
    return None


def import_graph() -> dict[str, set[str]]:
    """lvo_core's modules and the modules each imports, function-local imports included: a lazy import that closes
    a loop is still a loop (it only moves the failure from import time to call time)."""
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        me = ".".join(path.relative_to(CORE).with_suffix("").parts).removesuffix(".__init__")
        targets = {module_of(t) for t, _ in imports(path)}
        graph[me] = {t for t in targets if t and t != me}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_anywhere_in_lvo_core():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert module_of("model.backend") == "model.backend" and module_of("sae.load_sae") == "sae"


MAX_LINES = 450
SHIPPED = [*MODULES, *sorted((CORE.parent / "nodes").glob("*.py"))]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CORE.parent)))
def test_no_module_is_a_warehouse(path: Path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, (f"{path.relative_to(CORE.parent)} has {lines} lines: split it along its concepts "
                                f"(one concept per module, at most {MAX_LINES} lines)")
