"""The layout keeps its promises: small modules, a domain that imports nothing outward, one table of
bar sizes, and a docs/architecture.md whose paths all exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("domain", "application", "infrastructure", "projections", "api")
MAX_LINES = 400
OUTWARD = ("application", "infrastructure", "projections", "api")
BAR_SIZES = frozenset(("1m", "5m", "15m", "30m", "1h", "2h", "6h", "1d"))
BAR_SIZE_HOME = Path("domain/market.py")


def _modules(*parts: str) -> list[Path]:
    return sorted(p for part in parts for p in (ROOT / part).rglob("*.py") if "__pycache__" not in p.parts)


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import, lazy ones inside functions included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _bar_size_tables(tree: ast.AST) -> list[int]:
    """Lines of a dict giving bar-size names a length, or a Literal listing the names."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            lengths = [v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant) and k.value in BAR_SIZES]
            # a table of lengths (numbers or timedelta(...)); a table of the venue's names for them is not one
            if len(keys & BAR_SIZES) >= 3 and all(not isinstance(v, ast.Constant) or not isinstance(v.value, str)
                                                  for v in lengths):
                lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and getattr(node.value, "id", getattr(node.value, "attr", "")) == "Literal":
            names = {e.value for e in ast.walk(node.slice) if isinstance(e, ast.Constant)}
            if len(names & BAR_SIZES) >= 3:
                lines.append(node.lineno)
    return lines


def test_no_module_outside_tests_and_bench_is_over_400_lines():
    too_long = {str(p.relative_to(ROOT)): n for p in _modules(*PARTS)
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert too_long == {}, f"split these along a concept (at most {MAX_LINES} lines): {too_long}"


def test_domain_imports_nothing_of_the_outer_parts():
    outward = [f"{p.relative_to(ROOT)}:{line} imports {module}"
               for p in _modules("domain")
               for line, module in _imported(ast.parse(p.read_text(encoding="utf-8")))
               if module.split(".")[0] in OUTWARD]
    assert outward == [], "the domain must not depend on the outer parts:\n" + "\n".join(outward)


# Adapters that are built, not merely named: only the composition root may pick them.
ADAPTER_MODULES = ("infrastructure.clock", "infrastructure.process", "infrastructure.following",
                   "infrastructure.venues", "infrastructure.llm")


def test_only_the_composition_root_picks_clocks_processes_venues_and_followers():
    picked = [f"{p.relative_to(ROOT)}:{line} imports {module}"
              for p in _modules("api", "bench") if p.name != "bootstrap.py"
              for line, module in _imported(ast.parse(p.read_text(encoding="utf-8")))
              if module.startswith(ADAPTER_MODULES)]
    assert picked == [], "build these through api/bootstrap.py:\n" + "\n".join(picked)


def test_bar_sizes_are_defined_once_in_the_domain():
    assert _bar_size_tables(ast.parse((ROOT / BAR_SIZE_HOME).read_text(encoding="utf-8"))), "the domain's table moved"
    elsewhere = [f"{p.relative_to(ROOT)}:{line}" for p in _modules(*PARTS) if p.relative_to(ROOT) != BAR_SIZE_HOME
                 for line in _bar_size_tables(ast.parse(p.read_text(encoding="utf-8")))]
    assert elsewhere == [], f"derive bar sizes from domain.market.GRANULARITIES instead: {elsewhere}"


def test_the_checks_above_catch_what_they_guard():
    """The detectors themselves: an outward import, a second bar-size table and a Literal of them are seen."""
    tree = ast.parse("def f():\n    from infrastructure.clock import SystemClock\n")
    assert [m for _, m in _imported(tree)] == ["infrastructure.clock"]
    assert _bar_size_tables(ast.parse('T = {"1m": 60, "5m": 300, "1h": 3600}')) == [1]
    assert _bar_size_tables(ast.parse('G = Literal["1m", "5m", "1h"]')) == [1]
    assert _bar_size_tables(ast.parse('VENUE = {"1m": "ONE_MINUTE", "5m": "FIVE_MINUTE", "1h": "ONE_HOUR"}')) == []


def test_every_path_named_in_the_architecture_page_exists():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:domain|application|infrastructure|projections|api|tests|bench|docs)/[^`\s]*)`", text))
    assert len(named) > 40, "the page should name the parts it describes"
    missing = sorted(p for p in named if not (ROOT / p.rstrip("/")).exists())
    assert missing == [], f"docs/architecture.md names paths that do not exist: {missing}"
