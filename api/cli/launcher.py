"""The `tradecore` entry point: the top-level help without importing the commands.

`tradecore --help` (--debug may stand before or after it) prints the top-level help from an
index of the commands read from the CLI's source with ``ast`` (names, kinds, helps, in the order
api.cli.main mounts them): no command module, and so nothing of pydantic, the event store, psycopg or
pandas, is imported, and the process starts in about a third of the CPU time. The index follows the
source by itself (a command added in a module's ``register`` shows at once); anything it does not
recognise (an option other than the name, a help it cannot read) sends the help to the full CLI
instead, which is always right. The index is kept in __pycache__/launcher-index.json and read again
when one of its files changes. Every other command line goes to api.cli.main, unchanged.
tests/unit/test_cli_launcher.py renders both helps and keeps them equal.
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path
from typing import Annotated

import typer

HERE = Path(__file__).resolve().parent
DEBUG_HELP = "On failure show the Python traceback (also SYSTEM__LOG_LEVEL=DEBUG); may stand anywhere"


class Unrecognised(Exception):
    """The source holds a form the index does not read: the full CLI renders the help."""


_READ: dict[str, list[int]] = {}  # the files the index was read from: [mtime_ns, size] each


def _stamp(path: Path) -> list[int]:
    status = path.stat()
    return [status.st_mtime_ns, status.st_size]


def _tree(module: str) -> ast.Module:
    path = HERE / f"{module.rsplit('.', 1)[-1]}.py"
    if not module.startswith("api.cli.") or not path.is_file():
        raise Unrecognised(module)
    _READ[path.name] = _stamp(path)
    return ast.parse(path.read_text(encoding="utf-8"))


def _text(node: ast.AST) -> str:
    value = ast.literal_eval(node)
    if not isinstance(value, str):
        raise Unrecognised("help is not a string")
    return value


def _typer_help(tree: ast.Module, name: str) -> str:
    """``help=`` of ``name = typer.Typer(help=...)`` at the module's top level."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name] \
                and isinstance(node.value, ast.Call):
            for keyword in node.value.keywords:
                if keyword.arg == "help":
                    return _text(keyword.value)
    raise Unrecognised(f"no typer.Typer(help=...) named {name}")


def _docstring(tree: ast.Module, function: str) -> str:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return inspect.cleandoc(ast.get_docstring(node, clean=False) or "")
    raise Unrecognised(f"no function {function}")


def _imported_tree(tree: ast.Module, scope: ast.AST, name: str) -> ast.Module:
    """The module ``name`` comes from: a ``from api.cli.X import name`` in ``scope``, else ``tree``."""
    for node in ast.walk(scope):
        if isinstance(node, ast.ImportFrom) and node.module and any(a.name == name and a.asname is None for a in node.names):
            return _tree(node.module)
    return tree


def _mounts(tree: ast.Module, statements, scope: ast.AST, commands: list, groups: list) -> None:
    """``app.command("n")(f)`` and ``app.add_typer(x, name="n")`` calls among ``statements``."""
    for node in statements:
        call = node.value if isinstance(node, ast.Expr) else None
        if not isinstance(call, ast.Call):
            continue
        if isinstance(call.func, ast.Call) and getattr(call.func.func, "attr", None) == "command":
            inner = call.func
            if inner.keywords or len(inner.args) != 1 or len(call.args) != 1 or not isinstance(call.args[0], ast.Name):
                raise Unrecognised("app.command with more than a name")
            commands.append((_text(inner.args[0]), _docstring(tree, call.args[0].id)))
        elif getattr(call.func, "attr", None) == "add_typer":
            keywords = {k.arg: k.value for k in call.keywords}
            if set(keywords) != {"name"} or len(call.args) != 1 or not isinstance(call.args[0], ast.Name):
                raise Unrecognised("add_typer with more than a name")
            source = _imported_tree(tree, scope, call.args[0].id)
            groups.append((_text(keywords["name"]), _typer_help(source, call.args[0].id)))


def command_index() -> tuple[str, list[tuple[str, str]], list[tuple[str, str]]]:
    """(the app's help, [(command, help)], [(group, help)]) in api.cli.main's order of mounting."""
    main = _tree("api.cli.main")
    commands: list = []
    groups: list = []
    modules: tuple = ()
    for node in main.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["COMMAND_MODULES"]:
            modules = ast.literal_eval(node.value)
        elif isinstance(node, ast.Expr):
            _mounts(main, [node], main, commands, groups)
        elif isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", None) == "command" \
                        and getattr(decorator.func.value, "id", None) == "app":
                    if decorator.keywords or len(decorator.args) != 1:
                        raise Unrecognised("@app.command with more than a name")
                    commands.append((_text(decorator.args[0]), inspect.cleandoc(ast.get_docstring(node, clean=False) or "")))
    mount = next((n for n in main.body if isinstance(n, ast.FunctionDef) and n.name == "_mount_optional"), None)
    if mount is None or not modules:
        raise Unrecognised("api.cli.main mounts its commands another way")
    _mounts(main, mount.body, mount, commands, groups)
    for module in modules:
        tree = _tree(module)
        register = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "register"), None)
        if register is None:
            raise Unrecognised(f"{module} has no register(app)")
        _mounts(tree, register.body, tree, commands, groups)
    return _typer_help(main, "app"), commands, groups


CACHE = HERE / "__pycache__" / "launcher-index.json"


def cached_index() -> tuple[str, list, list]:
    """``command_index()``, kept beside the bytecode and read again only when a file it came from
    changed (each file's mtime and size, as Python checks its own .pyc); an unwritable cache is skipped."""
    import json

    try:
        cached = json.loads(CACHE.read_text(encoding="utf-8"))
        if all(_stamp(HERE / name) == stamp for name, stamp in cached["files"].items()):
            return cached["index"][0], [tuple(c) for c in cached["index"][1]], [tuple(g) for g in cached["index"][2]]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        pass
    _READ.clear()
    index = command_index()
    try:
        CACHE.parent.mkdir(exist_ok=True)
        temporary = CACHE.with_suffix(f".{__import__('os').getpid()}.tmp")
        temporary.write_text(json.dumps({"files": _READ, "index": index}), encoding="utf-8")
        temporary.replace(CACHE)
    except OSError:
        pass
    return index


def wants_top_help(args: list[str]) -> bool:
    """True for `tradecore --help` (and --debug beside it). `tradecore` alone goes to the full CLI."""
    return [a for a in args if a != "--debug"] == ["--help"]


def help_app() -> typer.Typer:
    """A typer app with the real one's options and every command's name and help, and no command behind them."""
    app_help, commands, groups = cached_index()
    app = typer.Typer(name="tradecore", help=app_help, no_args_is_help=True, pretty_exceptions_enable=False,
                      add_completion=False)

    @app.callback()
    def _global_options(debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False) -> None:
        pass

    def _never() -> None:  # pragma: no cover - only the help is ever shown
        raise AssertionError("the launcher's help app runs no command")

    for name, text in commands:
        app.command(name, help=text)(_never)
    for name, text in groups:
        app.add_typer(typer.Typer(help=text), name=name)
    return app


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    if wants_top_help(args):
        try:
            app = help_app()
        except (Unrecognised, OSError, SyntaxError, ValueError):
            app = None  # the full CLI renders it
        if app is not None:
            app(args=[a for a in args if a != "--debug"], prog_name="tradecore")
            return
    run_full_cli()


def run_full_cli() -> None:
    """The full CLI (api.cli.main), its modules imported with the cyclic collector off and then frozen: the
    imports make a few hundred thousand long-lived objects (classes, functions, pydantic schemas) that a
    collection would otherwise walk again and again; frozen, later collections skip them (a short command
    such as `tradecore backtest --bundled` spends ~6% less CPU). Only import-time objects are frozen."""
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        from api.cli.main import main as full
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
    full()


if __name__ == "__main__":  # pragma: no cover
    main()
