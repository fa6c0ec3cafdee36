"""The package's shape (issue 21 item 7): no import circle, and no provider spelled out in settings.py, whose
job is how the server runs; where a provider is and how to sign in to it are its accounts'."""

from __future__ import annotations

import ast
from pathlib import Path

from mcp_cloudops.registry import Registry

PACKAGE = Path(__file__).resolve().parents[1] / "mcp_cloudops"


def imports(path: Path) -> set[str]:
    """The mcp_cloudops modules `path` imports, anywhere in it (functions and TYPE_CHECKING blocks too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mcp_cloudops"):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found |= {name for name in names if (PACKAGE.parent / (name.replace(".", "/") + ".py")).exists()}
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("mcp_cloudops")}
    return found


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = {module_of(path): imports(path) for path in PACKAGE.rglob("*.py")}
    graph = {module: {dep for dep in deps if dep in graph and dep != module} for module, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                raise AssertionError("import circle: " + " -> ".join([*trail[trail.index(dep) :], dep]))
            if dep not in state:
                visit(dep, [*trail, dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_settings_name_no_provider(registry: Registry) -> None:
    text = (PACKAGE / "settings.py").read_text().lower()
    for key, provider in registry.providers.items():
        assert key not in text and provider.title.lower() not in text, key
