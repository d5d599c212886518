"""The package's shape: imports point one way along the data path, with no circles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "sidecar"
# Lower layers never import higher ones (within a layer a package may import itself).
LAYERS = (
    {"errors", "logs", "shutdown", "appkit", "__init__"},
    {"volume"},
    {"targets"},
    {"guard"},  # `sidecar guard`: the Docker socket's guard, on the targets' rules
    {"certbot"},
    {"cycle"},
    {"report"},
    {"scheduler"},
    {"fields", "loader"},  # reads the environment once, builds the views the layers below own
    {"cli", "incertbot"},  # the entry points: the command, and the plugin certbot loads
    {"__main__", "sleeper", "healthcheck"},
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, names in enumerate(LAYERS) if top in names)


def imports(path: Path, known: set[str]) -> set[str]:
    """The sidecar modules a file imports (TYPE_CHECKING ones too: they must point one way)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != "sidecar"}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports(path, set(files)) for name, path in files.items()}


def test_every_module_belongs_to_a_layer():
    """A new top-level module or package is placed in LAYERS on purpose."""
    for module in graph():
        layer(module)


def test_imports_point_one_way_along_the_data_path():
    """cli -> loader -> scheduler -> report -> cycle -> certbot -> targets -> volume, never back."""
    upward = [
        f"{module} imports {dep}"
        for module, deps in sorted(graph().items())
        for dep in sorted(deps)
        if layer(dep) > layer(module)
    ]
    assert upward == []


def test_there_are_no_import_circles():
    """Every module can be read after the ones it imports."""
    edges = graph()
    done: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            circles.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for dep in sorted(edges[module]):
            visit(dep, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])
    assert circles == []


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50
# The loader reads the environment; only the entry points load the configuration with it.
LOADER_USERS = {"sidecar.cli", "sidecar.incertbot", "sidecar.loader"}


def test_no_module_is_longer_than_400_lines():
    """A module that grows past this holds two concerns: split it by concern."""
    long = {
        module_name(p): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_longer_than_50_lines():
    """From its `def` to its last line: a longer one is several steps; name each."""
    long = {
        f"{module_name(p)}.{node.name}": node.end_lineno - node.lineno + 1
        for p in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    }
    assert long == {}


def test_only_the_entry_points_load_the_configuration():
    """Below the entry points code receives views (the CA, the targets, the challenge, ...),
    never the settings: `sidecar.loader` is imported by the entry points alone."""
    users = {module for module, deps in graph().items() if "sidecar.loader" in deps}
    assert users <= LOADER_USERS
