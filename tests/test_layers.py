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
