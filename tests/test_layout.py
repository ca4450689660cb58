"""The house: who imports whom in helpers/ and tools/, read from the code itself."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """Every module of ``modules`` that ``path`` imports, at the top or inside a function. ``from . import data``
    imports the module ``data``, not its package: a package counts only when no name taken from it is a module."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            submodules = {f"{base}.{alias.name}" for alias in node.names} & modules
            found |= submodules or {base}
    return found & modules


def graph() -> dict[str, set[str]]:
    files = sorted((ROOT / "helpers").rglob("*.py")) + sorted((ROOT / "tools").glob("*.py"))
    modules = {module_name(f): f for f in files}
    return {name: imports(path, set(modules)) - {name} for name, path in modules.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, each once (depth-first search, a circle reported from where it closes)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_circles_in_helpers_or_tools():
    assert circles(graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_helpers_never_imports_tools_and_the_lesson_reaches_machinery_only_downwards():
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("helpers"):
            assert not any(t.startswith("tools") for t in targets), (name, targets)
        if name.startswith("helpers._machinery"):
            lesson = {t for t in targets if t.startswith("helpers") and not t.startswith("helpers._machinery")}
            assert lesson <= {"helpers.data"}, (name, lesson)  # the CUDA graph makes FastLoader's batches


def test_the_lesson_stays_small():
    """The top level of helpers/ is what a learner reads: at most 1,500 lines in all (1,200 when the
    machinery moved out; since then the pictures that teach, the seed switch and "try your own handwriting")."""
    lines = sum(len(path.read_text().splitlines()) for path in (ROOT / "helpers").glob("*.py"))
    assert lines <= 1_500, lines
