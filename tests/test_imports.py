"""The house: hwgen's modules (and the zoo, installed as hwgen.models) import each other without a
cycle, read from the source with `ast` (an import inside a function counts: a lazy import hides a
cycle, it does not remove it); and the board driver, which is copied onto boards, imports nothing
of hwgen but itself and `hwgen.errors`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"hwgen": ROOT / "hwgen", "hwgen.models": ROOT / "models"}


def module_files(packages: dict[str, Path]) -> dict[str, Path]:
    modules = {}
    for package, folder in packages.items():
        for path in folder.rglob("*.py"):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            modules[".".join([package, *parts])] = path
    return modules


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The known modules that `name` imports (the nearest known module of each imported name)."""
    def owner(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            module = owner(target)
            # a module importing its own package's __init__ (or itself) is no edge
            if module is not None and module != name and not name.startswith(module + "."):
                found.add(module)
    return found


def import_cycles(packages: dict[str, Path]) -> list[list[str]]:
    """Every cycle that a depth-first walk of the import graph closes."""
    known = module_files(packages)
    graph = {name: sorted(imported_modules(name, path, known)) for name, path in known.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for other in graph[module]:
            if state.get(other) == 1:
                cycles.append(stack[stack.index(other):] + [other])
            elif other not in state:
                visit(other)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_hwgen_has_no_import_cycle():
    cycles = import_cycles(PACKAGES)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_a_planted_cycle_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")  # lazy and relative
    (package / "c.py").write_text("import pkg.a\n")
    assert import_cycles({"pkg": package}) == [["pkg.a", "pkg.sub.b", "pkg.a"]]


def test_the_board_driver_imports_only_itself_and_errors():
    known = module_files(PACKAGES)
    driver = [name for name in known if name.startswith("hwgen.driver") and name != "hwgen.driver.__main__"]
    for name in driver:
        outside = {m for m in imported_modules(name, known[name], known) if not m.startswith("hwgen.driver")}
        assert outside <= {"hwgen.errors"}, (name, outside)


def test_the_zoo_uses_only_the_public_api():
    """models/ (hwgen.models) reaches hwgen through `hwgen` (build, Build, export) and its errors
    only, never the compiler's insides."""
    known = module_files(PACKAGES)
    for name in (n for n in known if n.startswith("hwgen.models")):
        outside = {m for m in imported_modules(name, known[name], known) if not m.startswith("hwgen.models")}
        assert outside <= {"hwgen", "hwgen.errors"}, (name, outside)
