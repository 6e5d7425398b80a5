"""The layers hold: imports only point down (raft <- storage <- pyetcd) and no module imports itself back.

Every import counts for the layers. For cycles, every import that runs counts, at module level or inside a
function, so a cycle cannot hide behind a late import; only `if TYPE_CHECKING:` imports, which never run,
are left out of the cycle check.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("raft", "storage", "pyetcd")
FORBIDDEN = {"raft": ("storage", "pyetcd"), "storage": ("pyetcd",)}
"""What each layer must never import: the layers above it."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                inside.update(id(n) for n in ast.walk(child))
    return inside


def imported_modules(name: str, path: Path, known: set[str], *, runtime_only: bool = False) -> set[str]:
    """The project modules `name` imports (a `from package import thing` names the submodule when there is one)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    skipped = _type_checking_nodes(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {module for module in found if module in known}


def import_graph(*, runtime_only: bool = False) -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known, runtime_only=runtime_only) - {name}
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_lower_layers_never_import_the_layers_above() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if target.split(".")[0] in FORBIDDEN.get(module.split(".")[0], ())
    )
    assert upward == []


def test_the_import_graph_has_no_cycle() -> None:
    assert find_cycle(import_graph(runtime_only=True)) is None


def test_the_server_does_not_import_its_own_api() -> None:
    graph = import_graph()
    api = sorted(target for target in graph["pyetcd.server"] if target.startswith(("pyetcd.api", "pyetcd.http")))
    assert api == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_benchmarks_and_the_shared_server_launcher_never_import_the_tests() -> None:
    """`devservers` starts and stops etcd and pyetcd for tests/ and benchmarks/ alike, so that a
    benchmark needs nothing from the tests to run a server."""
    forbidden = {"benchmarks": ("tests",), "devservers": ("tests", "benchmarks")}
    found = []
    for package, above in forbidden.items():
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                found += [f"{path.relative_to(ROOT)} imports {name}" for name in names if name.split(".")[0] in above]
    assert found == []
