"""The CLI's one error boundary: every failure ends as one line (what failed, where, what to do).

``main`` runs every command through ``run_guarded``. A mistake of the user (a path that does not
exist, a number or date out of range, a file that is not what it claims, a store URL that does not
open, a read model that is not DuckDB) and a failure of the machine (a full disk) print ONE line on
stderr and exit non-zero; a Python traceback appears only with ``--debug`` (anywhere on the command
line) or ``SYSTEM__LOG_LEVEL=DEBUG``. Commands raise ``CommandFailed`` to say what failed and what to
do themselves; anything unforeseen still ends in one line that names the command and points at
``--debug``.
"""

from __future__ import annotations

import csv
import errno
import os
import sys
import zlib
from collections.abc import Callable, Sequence
from typing import NoReturn

from rich.console import Console

DEBUG_FLAG = "--debug"
_debug = False


class CommandFailed(Exception):
    """A command's own account of a failure: what failed, where, and what to do (exit ``code``)."""

    def __init__(self, what: str, todo: str = "", code: int = 1):
        self.what, self.todo, self.code = what, todo, code
        super().__init__(f"{what}; {todo}" if todo else what)


def debugging() -> bool:
    """Whether tracebacks are wanted (``--debug`` or ``SYSTEM__LOG_LEVEL=DEBUG``)."""
    return _debug or os.environ.get("SYSTEM__LOG_LEVEL", "").strip().upper() == "DEBUG"


def take_debug_flag(argv: Sequence[str]) -> list[str]:
    """The arguments without ``--debug`` (it may stand anywhere); remembers that it was given."""
    global _debug
    args = list(argv)
    if DEBUG_FLAG in args:
        _debug = True
        args = [a for a in args if a != DEBUG_FLAG]
    return args


def run_guarded(command: Callable[..., object], argv: Sequence[str] | None = None) -> NoReturn:
    """Run the typer app with ``argv``; a failure becomes one line on stderr and a non-zero exit."""
    # typer carries its own copy of click: its usage errors are of these classes.
    from typer import Abort
    from typer.core import _click as click

    args = take_debug_flag(sys.argv[1:] if argv is None else argv)
    where = _command_name(args)
    try:
        # Not standalone: a usage mistake comes back here as one line too, not as a framed box.
        code = command(args=args, prog_name="tradecore", standalone_mode=False)
    except SystemExit:
        raise
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()  # a group named alone: its help, as before
        sys.exit(exc.exit_code)
    except click.exceptions.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx is not None else "tradecore"
        _say(f"{path}: {exc.format_message()}", f"see `{path} --help`")
        sys.exit(exc.exit_code)
    except click.exceptions.ClickException as exc:
        _say(exc.format_message(), "")
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, Abort):
        _say(f"tradecore {where}: interrupted", "")
        sys.exit(130)
    except BaseException as exc:  # noqa: BLE001 - the boundary: one line unless debugging
        if debugging():
            raise
        what, todo, code = explain(exc)
        _say(f"tradecore {where}: {what}", todo)
        sys.exit(code)
    sys.exit(code if isinstance(code, int) else 0)


def explain(exc: BaseException) -> tuple[str, str, int]:
    """(what failed, what to do, exit code) for an exception that reached the boundary."""
    from application.errors import ConfigurationError, StoreUnavailable, StoreURLError
    from domain.events import DomainError

    if isinstance(exc, CommandFailed):
        return exc.what, exc.todo, exc.code
    if isinstance(exc, (StoreUnavailable, StoreURLError)):
        return str(exc), "check --store / EVENTSTORE__URL (sqlite:///PATH or postgresql://USER@HOST:PORT/DB)", 2
    if isinstance(exc, ConfigurationError):
        return f"invalid configuration: {exc}", "run `tradecore config validate` for details", 2
    if isinstance(exc, OSError):
        return _explain_os_error(exc)
    if isinstance(exc, csv.Error):
        return f"the CSV file cannot be read: {exc}", "check the file is plain CSV with one candle per row", 2
    if isinstance(exc, (EOFError, zlib.error)):
        return f"the file is cut short or corrupt ({exc})", "fetch or export the file again", 2
    if isinstance(exc, OverflowError):
        return (f"a number or date is out of range ({exc})",
                "ids and counts must be at most 9223372036854775807, days before 9999-12-31", 2)
    duck = _explain_duckdb(exc)
    if duck is not None:
        return duck
    if isinstance(exc, DomainError):
        return f"refused: {exc}", "nothing was recorded by the refused step", 1
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return (f"failed: {type(exc).__name__}{': ' + detail if detail else ''}",
            f"run again with {DEBUG_FLAG} for the traceback", 1)


def _explain_os_error(exc: OSError) -> tuple[str, str, int]:
    import gzip

    name = exc.filename if exc.filename is not None else ""
    where = f" {name}" if name else ""
    if isinstance(exc, gzip.BadGzipFile):
        return f"the file is not gzip data ({exc})", "give a .csv.gz written by gzip, or the plain file", 2
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"the disk is full while writing{where}",
                "free some space and run the command again (what was written before stays in the log)", 1)
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder:{where or ' (unnamed)'}", "check the path (folders are not created for you)", 2
    if isinstance(exc, IsADirectoryError):
        return f"{name or 'the path'} is a folder, not a file", "name a file", 2
    if isinstance(exc, NotADirectoryError):
        return f"a part of{where} is a file, not a folder", "check the path", 2
    if isinstance(exc, PermissionError):
        return f"permission denied:{where}", "check the file's permissions or choose another path", 2
    return f"cannot read or write{where}: {exc.strerror or exc}", "check the path and the disk", 1


def _explain_duckdb(exc: BaseException) -> tuple[str, str, int] | None:
    duckdb = sys.modules.get("duckdb")
    if duckdb is None or not isinstance(exc, duckdb.Error):
        return None
    text = str(exc).splitlines()[0]
    if isinstance(exc, duckdb.IOException) or "database file" in text.lower():
        return (f"the read model cannot be opened: {text}",
                "point --readmodel / READMODEL__PATH at a DuckDB file, or at a new path in an existing folder", 2)
    return f"the read model failed: {text}", f"run again with {DEBUG_FLAG} for the traceback", 1


def _command_name(args: Sequence[str]) -> str:
    words = [a for a in args[:2] if not a.startswith("-")]
    return " ".join(words[:2]) if len(words) == 2 and words[0] in _GROUPS else (words[0] if words else "")


_GROUPS = frozenset({"data", "audit", "report", "config", "backup", "project", "control"})


def _say(what: str, todo: str) -> None:
    line = f"error: {what}" + (f"; {todo}" if todo else "")
    Console(stderr=True, soft_wrap=True).print(line.replace("\n", " "), markup=False, highlight=False)
