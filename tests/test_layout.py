"""The package's shape, read from its source with `ast`: no import cycle between modules,
the rank side free of the CLI, and dependencies that point one way."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.helpers import ROOT

PACKAGE = ROOT / "mlxrun"
STDLIB = sys.stdlib_module_names


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module this file imports, at any depth (imports inside functions count:
    a cycle through a lazy import is still a cycle), except those only for type checking."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def graph() -> dict[str, set[str]]:
    """mlxrun module -> the mlxrun modules it imports."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in imports_of(path) if m in files} - {name} for name, path in files.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles, each once (depth-first search, iterative)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(edges):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(edges[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(edges[nxt])))
    return found


def closure(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for m in edges[todo.pop()] - seen:
            seen.add(m)
            todo.append(m)
    return seen


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_rank_side_code_uses_the_standard_library_only() -> None:
    # The agent and the ring wait start on every rank before its program: they import
    # nothing outside the standard library and mlxrun.rank.
    for path in (PACKAGE / "rank").glob("*.py"):
        outside = {
            m
            for m in imports_of(path)
            if m.split(".")[0] not in STDLIB and not m.startswith("mlxrun.rank")
        }
        # mlx_launch runs MLX's own launcher and group joins MLX's group, each importing
        # it where it runs.
        allowed = {"mlx.core"} if path.name == "group.py" else set()
        assert outside <= {"mlx._distributed_utils", "mlx._distributed_utils.launch", *allowed}, (
            path
        )


def test_code_that_runs_on_ranks_never_imports_the_cli() -> None:
    edges = graph()
    for program in (
        "mlxrun.rank.agent",
        "mlxrun.reduce.worker",
        "mlxrun.check.probe",
        "mlxrun.bench.rank",
    ):
        reached = closure(edges, program)
        assert not {m for m in reached if m.startswith("mlxrun.cli")}, program
        for path in (PACKAGE.parent / (m.replace(".", "/") + ".py") for m in reached):
            if path.exists():
                third = {m.split(".")[0] for m in imports_of(path)} & {"rich", "typer", "click"}
                assert not third, path


def test_only_the_cli_imports_the_cli() -> None:
    for name, targets in graph().items():
        if not name.startswith("mlxrun.cli") and name != "mlxrun.__main__":
            assert not {t for t in targets if t.startswith("mlxrun.cli")}, name


def test_the_algebra_imports_only_the_standard_library_and_the_ops() -> None:
    imported = imports_of(PACKAGE / "reduce" / "algebra.py")
    outside = {m for m in imported if m.split(".")[0] not in STDLIB}
    assert {m for m in outside if not m.startswith("mlxrun.reduce.ops")} == set()


def test_readers_do_not_import_the_dispatch() -> None:
    edges = graph()
    for name in edges:
        if name.startswith("mlxrun.data.") and name != "mlxrun.data.sources":
            assert "mlxrun.data.sources" not in edges[name], name
