"""The package's layers, read from every module's imports (function-level ones included, those
under ``if TYPE_CHECKING:`` left out): no module imports a layer above its own, and no modules
import each other in a cycle.

Layers, bottom up: ``losses`` and ``metrics`` (torch only, neither imports the other),
``integrations``, ``analysis`` (what the ``labelreg-nlp`` command ships), ``experiments`` (what the
scripts use), ``cli``. The root ``labelreg_nlp/__init__.py`` re-exports and is left out.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "labelreg_nlp"
RANK = {"losses": 0, "metrics": 0, "integrations": 1, "analysis": 2, "experiments": 3, "cli": 4}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path) -> set[str]:
    """The package modules (or names in them) that ``path`` imports."""
    name, tree = module_name(path), ast.parse(path.read_text())
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    skip, out = type_checking_lines(tree), set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else (node.module or "")
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m.startswith("labelreg_nlp")}


GRAPH = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}
MODULES = set(GRAPH)


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for module, imported in GRAPH.items():
        own = layer(module)
        if own is None:
            continue
        for target in imported & MODULES:
            other = layer(target)
            if other is None or other == own:
                continue
            if RANK[other] > RANK[own] or RANK[other] == RANK[own]:  # equal: losses <-> metrics
                upward.append(f"{module} -> {target}")
    assert not upward, upward


def test_no_import_cycle():
    edges = {m: {t for t in imported & MODULES if t != m and not m.startswith(t + ".")} for m, imported in GRAPH.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target] if target in path else [module, target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_the_layers_are_what_the_package_holds():
    assert {layer(m) for m in MODULES} - {None} == set(RANK)
