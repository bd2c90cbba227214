"""The house rules of panels_core and panels_builtin, checked on their source (docs/architecture.md).

No import circles (an import inside a function counts; one under ``if TYPE_CHECKING:``
does not), and no private name used across modules: no ``from x import _name``, no
``module._name``, no import of an underscore-named module. Modules stay at most 600 lines and functions at most 60. Nothing is allow-listed.
"""


from __future__ import annotations

import ast
from pathlib import Path

PACKAGES = ("panels_core", "panels_builtin")


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def scan(name: str, path: Path, known: dict[str, Path]):
    tree = ast.parse(path.read_text(), str(path))
    skip = type_checking_nodes(tree)
    is_package = path.name == "__init__.py"
    edges, problems, aliases = set(), [], {}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    edges.add(alias.name)
                    aliases[alias.asname or alias.name] = alias.name
                    if any(is_private(p) for p in alias.name.split(".")):
                        problems.append(f"{path}:{node.lineno}: imports private module {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source not in known:
                continue
            if any(is_private(p) for p in source.split(".")):
                problems.append(f"{path}:{node.lineno}: imports from private module {source}")
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in known:
                    edges.add(sub)
                    aliases[alias.asname or alias.name] = sub
                    if is_private(alias.name):
                        problems.append(f"{path}:{node.lineno}: imports private module {sub}")
                else:
                    edges.add(source)
                    if is_private(alias.name):
                        problems.append(f"{path}:{node.lineno}: imports private name {alias.name} from {source}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and is_private(node.attr)
        ):
            problems.append(f"{path}:{node.lineno}: uses private {aliases[node.value.id]}.{node.attr}")
    edges.discard(name)
    return edges, problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


ROOT = Path(__file__).resolve().parents[2]


def problems_in(root: Path) -> tuple[list[str], list[list[str]]]:
    """(private names used across modules, import circles) in ``root``'s packages."""
    known = modules(root)
    graph, problems = {}, []
    for name, path in sorted(known.items()):
        graph[name], found = scan(name, path, known)
        problems += found
    return problems, cycles(graph)


def test_no_private_name_is_used_across_modules() -> None:
    problems, _ = problems_in(ROOT)
    assert problems == []


def test_no_import_circles() -> None:
    _, circles = problems_in(ROOT)
    assert circles == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """A circle through a lazy import, a private import, a private attribute and a
    private module are each found; a TYPE_CHECKING import is not a circle."""
    _write(
        tmp_path,
        {
            "panels_core/__init__.py": "",
            "panels_core/a.py": "from panels_core.b import helper\n",
            "panels_core/b.py": "def helper():\n    from panels_core import a\n    return a\n",
            "panels_core/c.py": "from panels_core.d import _secret\n",
            "panels_core/d.py": "_secret = 1\n",
            "panels_core/e.py": "import panels_core.d as d\nx = d._secret\n",
            "panels_core/_hidden.py": "",
            "panels_core/f.py": "from panels_core import _hidden\n",
            "panels_core/g.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from panels_core.h import H\n",
            "panels_core/h.py": "from panels_core.g import TYPE_CHECKING\nclass H: ...\n",
            "panels_builtin/__init__.py": "",
        },
    )
    problems, circles = problems_in(tmp_path)
    assert circles == [["panels_core.a", "panels_core.b"]]
    text = "\n".join(problems)
    assert "imports private name _secret from panels_core.d" in text
    assert "uses private panels_core.d._secret" in text
    assert "imports private module panels_core._hidden" in text
    assert len(problems) == 3


MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def too_long(root: Path) -> list[str]:
    """Modules over MAX_MODULE_LINES lines and functions over MAX_FUNCTION_LINES lines."""
    found = []
    for name, path in sorted(modules(root).items()):
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}.{node.name}: {length} lines")
    return found


def test_modules_and_functions_stay_short(tmp_path: Path) -> None:
    """Every module at most 600 lines, every function at most 60; and the check finds both."""
    assert too_long(ROOT) == []
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    _write(tmp_path, {"panels_core/long.py": f"def f():\n{body}\n" + "\n" * 540})
    assert too_long(tmp_path) == ["panels_core.long: 602 lines", "panels_core.long.f: 62 lines"]
