"""Which project files a piece of code runs: the static import closure of a module or script.

The closure follows every ``import dualmic…`` / ``from dualmic… import …`` statement, at module
level or inside functions, and adds each package's ``__init__.py`` on the way. It decides what a
DVC stage must declare as deps (tests/test_stage_deps.py) and what the training checkpoint's
fingerprint hashes, so the two can never disagree.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "dualmic"
SRC = Path(__file__).resolve().parents[2]  # the folder that holds the dualmic package


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The file of module ``name`` (dotted) under ``src``, or None when it is not a project module."""
    base = src.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imported(tree: ast.AST, current: str | None) -> set[str]:
    """Dotted project module names a parsed file imports (submodules of ``from x import y`` included)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and current:  # relative import
                parent = current.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(start: Path | str, src: Path = SRC) -> set[Path]:
    """Every project file that ``start`` (a script path, or a dotted module name) imports,
    directly or transitively, with the ``__init__.py`` of every package on the way; ``start``
    itself included."""
    todo: list[tuple[Path, str | None]] = []
    if isinstance(start, Path):
        todo.append((start.resolve(), None))
    else:
        for name in _with_parents(start):
            path = module_file(name, src)
            if path is None:
                raise ModuleNotFoundError(f"{name} is not a module under {src}")
            todo.append((path, name))
    seen: set[Path] = set()
    while todo:
        path, name = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for imported in _imported(ast.parse(path.read_text(), str(path)), name):
            for mod in _with_parents(imported):
                found = module_file(mod, src)
                if found is not None and found not in seen:
                    todo.append((found, mod))
    return seen


def code_fingerprint(module: str, src: Path = SRC) -> str:
    """Hash of the code of ``module``'s import closure (paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(import_closure(module, src)):
        digest.update(path.relative_to(src).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()
