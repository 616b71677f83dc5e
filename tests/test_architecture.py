"""The rules the package's tree keeps (the README's "Architecture"): no import circles,
counting imports under TYPE_CHECKING and inside functions; no module uses another module's
private names; no file much over 600 lines; every module's docstring says its job."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import langgraph_runstore

PACKAGE = Path(langgraph_runstore.__file__).parent
MAX_LINES = 600


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = modules()


def imported(name: str, path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(module, names taken from it, line) for every import in the file, wherever it is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [alias.name for alias in node.names]
            yield base, names, node.lineno


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, names, _ in imported(name, path):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
            if len(targets) < len(names) and module in MODULES:
                targets.append(module)
            graph[name].update(t for t in targets if t != name)
    return graph


def test_there_are_no_import_circles() -> None:
    graph = edges()
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                circles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # the package's __init__ re-exports its parts and nothing imports it back
    assert circles == [], "\n".join(" -> ".join(c) for c in circles)


def test_no_module_uses_another_modules_private_names() -> None:
    offences = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        aliases: dict[str, str] = {}
        for module, names, line in imported(name, path):
            if not module.startswith("langgraph_runstore"):
                continue
            for taken in names:
                if taken.startswith("_") and not taken.startswith("__"):
                    offences.append(f"{name}:{line} imports {module}.{taken}")
                if f"{module}.{taken}" in MODULES:
                    aliases[taken] = f"{module}.{taken}"
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            if node.value.id in aliases and node.attr.startswith("_"):
                offences.append(f"{name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert offences == []


def test_no_file_is_much_over_600_lines() -> None:
    long = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_module_says_its_job_in_its_docstring() -> None:
    missing = [
        name for name, path in MODULES.items() if not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert missing == []
