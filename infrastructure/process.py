"""Which process this is, and whether another one is still alive: what tells a dead run from a live one.

A process is named ``host:pid:start`` (start = its creation time in whole seconds), so a pid reused by a
later process is not mistaken for the one that started a run. Only processes of this host can be judged.
"""

from __future__ import annotations

import os
import socket

import psutil

__all__ = ["process_alive", "this_process"]


def this_process() -> str:
    """``host:pid:start`` of the running process."""
    me = psutil.Process(os.getpid())
    return f"{socket.gethostname()}:{me.pid}:{int(me.create_time())}"


def process_alive(identity: str) -> bool | None:
    """Whether the process ``identity`` names still runs: None when it ran on another host (cannot tell)."""
    parts = identity.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    host, pid, start = parts[0], int(parts[1]), int(parts[2])
    if host != socket.gethostname():
        return None
    try:
        return int(psutil.Process(pid).create_time()) == start
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # it exists; we may not look: never end a run we cannot prove dead
