"""Fail when the package outgrows its shape (DESIGN.md, "Shape"):

- a module over 400 lines or a function over 60 (migrations aside): a sign of two jobs;
- a private name (`_x`) imported from another module of the package;
- an import circle among the package's modules (imports at module level, TYPE_CHECKING aside).

    python scripts/check_shape.py [PACKAGE_DIR]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Modules being reshaped on another branch at the time of writing; each entry goes when the
# module fits (a stale entry is reported too, so the list only shrinks).
PENDING: set[str] = set()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The module an ImportFrom names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def top_level_imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    found: list[ast.ImportFrom | ast.Import] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            found += [n for n in node.body if isinstance(n, ast.Import | ast.ImportFrom)]
    return found


def problems(root: Path) -> list[str]:
    found: list[str] = []
    package = root.name
    modules = {
        module_name(p, root): p
        for p in sorted(root.rglob("*.py"))
        if "migrations" not in p.relative_to(root).parts
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        text = path.read_text()
        shown = path.as_posix()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{shown}: {lines} lines (over {MAX_MODULE_LINES})")
        tree = ast.parse(text, filename=shown)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(
                        f"{shown}:{node.lineno}: {node.name}() is {length} lines "
                        f"(over {MAX_FUNCTION_LINES})"
                    )
            if isinstance(node, ast.ImportFrom):
                source = absolute(name, path.name == "__init__.py", node)
                if source.split(".")[0] != package:
                    continue
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private = f"{source}.{alias.name}"
                        found.append(f"{shown}:{node.lineno}: imports private {private}")
        edges = graph.setdefault(name, set())
        for node in top_level_imports(tree):
            if isinstance(node, ast.ImportFrom):
                source = absolute(name, path.name == "__init__.py", node)
                targets = [f"{source}.{a.name}" for a in node.names] + [source]
            else:
                targets = [a.name for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    edges.add(target)
                    break
    found += circles(graph)
    waived = [line for line in found if line.split(":")[0] in PENDING]
    for path in sorted(PENDING - {line.split(":")[0] for line in waived}):
        found.append(f"{path}: listed in PENDING but fits now: remove it from the list")
    return [line for line in found if line not in waived]


def circles(graph: dict[str, set[str]]) -> list[str]:
    """Each import circle once, by depth-first search."""
    found: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                loop = path[path.index(nxt) :] + [nxt]
                found.append("import circle: " + " -> ".join(loop))
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "django_rollback")
    found = problems(root)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} shape problem(s) in {root}/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
