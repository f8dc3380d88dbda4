"""The package's import graph: no cycles, and layers that only import downwards.

Read from the source with ``ast`` (imports inside functions count too: a lazy import that
closes a cycle is still a cycle a maintainer has to keep in mind).
"""

from __future__ import annotations

import ast
from pathlib import Path

import jsonl_batch

PACKAGE = Path(jsonl_batch.__file__).parent

# module prefix → the only package modules it may import (besides its own subpackage)
LAYERS = {
    "jsonl_batch.errors": set(),
    "jsonl_batch.crash": set(),
    "jsonl_batch.jsonl": {"jsonl_batch.errors"},
    "jsonl_batch.publish": {"jsonl_batch.errors", "jsonl_batch.crash"},
    "jsonl_batch.formats": {"jsonl_batch.errors", "jsonl_batch.jsonl", "jsonl_batch.publish"},
    "jsonl_batch.deployments": {"jsonl_batch.errors"},
    "jsonl_batch.tokens": {
        "jsonl_batch.errors",
        "jsonl_batch.deployments",
        "jsonl_batch.formats",
    },
}
LIBRARY_MUST_NOT_IMPORT = ("jsonl_batch.cli", "jsonl_batch.__main__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules ``name`` imports (a name imported from a package counts as its
    submodule when there is one)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                if candidate in known:
                    found.add(candidate)
                elif module in known:
                    found.add(module)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_layers_only_import_downwards() -> None:
    graph = _graph()
    for name, targets in graph.items():
        for prefix, allowed in LAYERS.items():
            if name == prefix or name.startswith(prefix + "."):
                outside = {
                    target
                    for target in targets
                    if not (target == prefix or target.startswith(prefix + "."))
                    and not any(target == a or target.startswith(a + ".") for a in allowed)
                }
                assert not outside, f"{name} imports {sorted(outside)} above its layer"
        if not name.startswith(LIBRARY_MUST_NOT_IMPORT):
            bad = {t for t in targets if t.startswith(LIBRARY_MUST_NOT_IMPORT)}
            assert not bad, f"library module {name} imports the CLI: {sorted(bad)}"


def test_parsing_a_deployment_map_does_not_load_the_tokenizer() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from jsonl_batch.deployments import parse_deployment_map\n"
        "from jsonl_batch.cli._common import read_deployment_map\n"
        "assert parse_deployment_map(['a=gpt-4o']) == {'a': 'gpt-4o'}\n"
        "assert read_deployment_map(('a=gpt-4o',), None) == {'a': 'gpt-4o'}\n"
        "assert 'tiktoken' not in sys.modules, 'tiktoken was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_package_ships_its_type_marker() -> None:
    assert (PACKAGE / "py.typed").is_file()
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text("utf-8")
    assert '"py.typed"' in pyproject  # in package-data, so wheels carry it
