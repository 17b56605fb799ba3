"""The layering rules: engine/ imports no Qt; desktop/ imports no SQLAlchemy or Huey."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("engine", {"PySide6", "shiboken6", "qasync", "desktop"}), ("desktop", {"sqlalchemy", "huey", "alembic"})],
)
def test_layering(package: str, forbidden: set[str]) -> None:
    modules = imported_modules(package)
    assert modules, f"no modules found in {package}/"
    offenders = {path: sorted(names & forbidden) for path, names in modules.items() if names & forbidden}
    assert offenders == {}
