"""The package's shape (docs/architecture.md, "Rules"): imports only go downward, no module
imports itself back through others, and no module grows past 400 lines."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "glisk_cli"

# Lower layers first; a module may import its own layer or any layer below.
LAYERS: list[set[str]] = [
    {
        "errors",
        "redact",
        "durations",
        "pipeline",
        "policy",
        "flow",
        "checkpoint",
        "why",
        "logging",
        "__init__",
    },
    {"config", "embedded"},
    {"db"},
    {"models"},
    {"repositories"},
    {"uow", "migrations", "brief_ddl", "verify", "serve", "grants", "documents"},
    {"work"},
    {"cli", "__main__"},
]


def _modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts): path
        for path in PACKAGE.rglob("*.py")
    }


def _imports(path: Path) -> set[str]:
    """Every glisk_cli module `path` imports, lazily or at the top, TYPE_CHECKING included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    modules = _modules()
    return {name for name in found if name in modules}


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__init__"
    return next(rank for rank, names in enumerate(LAYERS) if part in names)


def test_every_module_belongs_to_a_layer() -> None:
    for module in _modules():
        _layer(module)


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_only_go_downward(module: str) -> None:
    upward = [
        imported for imported in _imports(_modules()[module]) if _layer(imported) > _layer(module)
    ]
    assert upward == [], f"{module} imports a higher layer"


def test_no_import_cycles() -> None:
    graph = {module: _imports(path) - {module} for module, path in _modules().items()}
    # A package's __init__ re-exporting its submodules is not a cycle of meaning.
    for module in graph:
        graph[module] = {m for m in graph[module] if not module.startswith(m + ".")}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, " -> ".join([*visiting, module])
        visiting.append(module)
        for imported in graph[module]:
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in graph:
        visit(module)


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_is_over_400_lines(module: str) -> None:
    assert len(_modules()[module].read_text().splitlines()) <= 400
