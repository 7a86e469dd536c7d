"""The kit's layers only point down (docs/design.md, "Layers").

Every module of ``lib/medadv`` is parsed with ``ast`` and each import of a kit module (at module level or inside a
function) becomes an arrow of the import graph. The tests fail on a cycle, on an arrow into a higher layer or across
two packages of the same layer, on a function-local import of the kit that the allow-list below does not give a reason
for, and on a statistics module that imports a network library.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
PACKAGE = LIB / "medadv"

# Lowest first. A module's layer is that of its first component below ``medadv`` ("" is the package itself); it may
# import modules of its own component and of lower layers only.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("", "allocator", "console", "core", "kernel", "layout", "strict_yaml", "style"),
    ("config",),
    ("stats",),
    ("data", "models"),
    ("attacks",),
    ("train", "explain"),
    ("detect",),  # trains its real-vs-fake classifier with train's loop
    ("report",),
    ("reader_app", "effects", "run_report"),
    ("stages", "pipeline"),
    ("sweep",),
    ("cli",),
    ("__main__",),
)
RANK = {component: rank for rank, components in enumerate(LAYERS) for component in components}

# Function-local imports of the kit, each with its reason: module -> (the modules it may import there, why).
LOCAL_IMPORTS: dict[str, tuple[frozenset[str], str]] = {
    "medadv.pipeline": (
        frozenset(
            {
                "medadv.attacks.robustness",
                "medadv.detect.config",
                "medadv.effects",
                "medadv.explain.study",
                "medadv.models.backbones",
                "medadv.models.classifier",
                "medadv.reader_app.config",
                "medadv.train.gan",
                "medadv.train.loop",
            }
        ),
        "the section configs import torch and captum; `medadv run --help` and a bad option must answer without them",
    ),
}
NETWORK_LIBRARIES = ("torch", "torchvision", "captum")


@dataclass(frozen=True)
class Arrow:
    """One import of a kit module: ``source`` imports ``target`` at ``line``, inside a function when ``local``."""

    source: str
    target: str
    line: int
    local: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _local_nodes(tree: ast.AST) -> set[int]:
    return {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for node in ast.walk(fn)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    }


def imported_names(module: str) -> list[tuple[str, int, bool]]:
    """Every module name ``module`` imports (kit or not), with its line and whether the import is inside a function;
    ``from a import b`` names ``a.b`` when that is a kit module, else ``a``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    local = _local_nodes(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno, id(node) in local) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            for alias in node.names:
                sub = f"{name}.{alias.name}"
                out.append((sub if sub in MODULES else name, node.lineno, id(node) in local))
    return out


def kit_arrows() -> list[Arrow]:
    return [
        Arrow(module, target, line, local)
        for module in MODULES
        for target, line, local in imported_names(module)
        if target == "medadv" or target.startswith("medadv.")
    ]


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def find_cycle(arrows: list[Arrow]) -> list[str]:
    """One cycle of the graph as a list of modules (first == last), or [] when there is none."""
    graph: dict[str, set[str]] = {}
    for a in arrows:
        if a.source != a.target:
            graph.setdefault(a.source, set()).add(a.target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def upward(arrows: list[Arrow]) -> list[str]:
    """Arrows into a higher layer, or across two packages of one layer, as readable lines."""
    out = []
    for a in arrows:
        src, dst = component(a.source), component(a.target)
        if src != dst and RANK[dst] >= RANK[src]:
            out.append(
                f"{a.source}:{a.line} imports {a.target} (layer {RANK[dst]} {dst!r} from layer {RANK[src]} {src!r})"
            )
    return out


def test_every_package_has_a_layer() -> None:
    missing = sorted({component(m) for m in MODULES} - set(RANK))
    assert not missing, f"give these parts of medadv a layer in LAYERS (and docs/design.md): {missing}"


def test_the_graph_sees_the_kit_imports() -> None:
    arrows = kit_arrows()
    assert Arrow("medadv.report", "medadv.core", 42, False) in {Arrow(a.source, a.target, 42, a.local) for a in arrows}
    assert any(a.source == "medadv.pipeline" and a.local for a in arrows)  # function-local imports are seen too
    assert len({a.source for a in arrows}) > 60


def test_no_import_cycle() -> None:
    assert find_cycle(kit_arrows()) == []


def test_no_arrow_points_up_or_sideways() -> None:
    assert upward(kit_arrows()) == []


def test_function_local_imports_of_the_kit_have_a_reason() -> None:
    unexplained = [
        f"{a.source}:{a.line} imports {a.target} inside a function"
        for a in kit_arrows()
        if a.local and a.target not in LOCAL_IMPORTS.get(a.source, (frozenset(), ""))[0]
    ]
    assert unexplained == []


def test_the_allow_list_names_only_imports_that_exist() -> None:
    seen = {(a.source, a.target) for a in kit_arrows() if a.local}
    for module, (targets, reason) in LOCAL_IMPORTS.items():
        assert reason and {(module, t) for t in targets} <= seen, module


def test_statistics_run_no_network() -> None:
    offenders = [
        f"{m}:{line} imports {name}"
        for m in MODULES
        if component(m) == "stats"
        for name, line, _ in imported_names(m)
        if name.split(".")[0] in NETWORK_LIBRARIES
    ]
    assert offenders == []


def test_data_never_imports_attacks() -> None:
    assert [a for a in kit_arrows() if component(a.source) == "data" and component(a.target) == "attacks"] == []


@pytest.mark.parametrize(
    ("arrows", "expected"),
    [
        (
            [Arrow("medadv.a", "medadv.b", 1, False), Arrow("medadv.b", "medadv.a", 2, True)],
            ["medadv.a", "medadv.b", "medadv.a"],
        ),
        ([Arrow("medadv.a", "medadv.b", 1, False), Arrow("medadv.b", "medadv.c", 2, False)], []),
    ],
)
def test_the_cycle_finder_finds_cycles(arrows: list[Arrow], expected: list[str]) -> None:
    assert find_cycle(arrows) == expected


def test_an_upward_arrow_is_reported() -> None:
    found = upward(
        [
            Arrow("medadv.data.adversarial", "medadv.attacks.gan_attack", 7, True),
            Arrow("medadv.data.images", "medadv.models.gan_networks", 8, False),
            Arrow("medadv.train.loop", "medadv.stats.auc", 9, False),
        ]
    )
    assert found == [
        "medadv.data.adversarial:7 imports medadv.attacks.gan_attack (layer 5 'attacks' from layer 4 'data')",
        "medadv.data.images:8 imports medadv.models.gan_networks (layer 4 'models' from layer 4 'data')",
    ]
