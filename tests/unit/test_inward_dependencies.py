"""Dependencies point inward (docs/architecture.md): api -> application -> domain, and only the composition root,
api/bootstrap.py, picks concrete adapters. No other module of api/ imports infrastructure/, not even inside a
function, under TYPE_CHECKING or through importlib; application/ imports none of it either. What still does is
listed below, module by module, with the reason; a new import of infrastructure fails here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROOT_MODULE = "api/bootstrap.py"

# (file, imported module) -> why it is still there. Remove an entry when its import goes.
ALLOWED: dict[tuple[str, str], str] = {}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import anywhere in the tree: top level, inside functions, under TYPE_CHECKING,
    ``from package import module`` (as ``package.module``) and ``importlib.import_module("...")`` / ``__import__``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module.split(".")[0] == "infrastructure" and node.module.count(".") == 0:
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def infrastructure_imports(*parts: str) -> list[tuple[str, int, str]]:
    """(file, line, module) of each import of infrastructure/ in the modules under ``parts``."""
    out = []
    for part in parts:
        for path in sorted((ROOT / part).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            rel = str(path.relative_to(ROOT))
            for line, module in imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
                if module == "infrastructure" or module.startswith("infrastructure."):
                    out.append((rel, line, module))
    return out


def test_only_the_composition_root_of_api_imports_infrastructure():
    outside = [f"{file}:{line} imports {module}" for file, line, module in infrastructure_imports("api")
               if file != ROOT_MODULE and (file, module) not in ALLOWED]
    assert outside == [], ("build it through api/bootstrap.py (a port in application/, the adapter handed in), or "
                           "take the error from application/errors.py:\n" + "\n".join(outside))


def test_application_imports_no_infrastructure():
    outward = [f"{file}:{line} imports {module}" for file, line, module in infrastructure_imports("application")
               if (file, module) not in ALLOWED]
    assert outward == [], "the application depends on ports, not adapters:\n" + "\n".join(outward)


def test_every_allowed_import_is_still_there():
    """An entry whose import is gone is removed, so the list says what is left to do."""
    present = {(file, module) for file, _, module in infrastructure_imports("api", "application")}
    stale = sorted(f"{file}: {module}" for file, module in ALLOWED if (file, module) not in present)
    assert stale == [], f"remove these from ALLOWED, their imports are gone: {stale}"


def test_the_scan_sees_every_form_of_import():
    source = (
        "import infrastructure.clock\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from infrastructure.settings.loading import Settings\n"
        "def f():\n"
        "    from infrastructure import maintenance\n"
        "    import importlib\n"
        "    return importlib.import_module('infrastructure.backup.storage')\n"
        "from api.cli.common import fail\n"
    )
    modules = sorted(m for _, m in imported_modules(ast.parse(source)) if m.startswith("infrastructure"))
    assert modules == ["infrastructure", "infrastructure.backup.storage", "infrastructure.clock",
                       "infrastructure.maintenance", "infrastructure.settings.loading"]
