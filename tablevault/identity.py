"""Who a process is, and whether it is still alive.

A pid alone says little: the kernel reuses pids. A process is identified by its host, its pid
and its start time as psutil reports it; on another host, where we cannot look, a recent
heartbeat is the only sign of life.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
import time
from dataclasses import dataclass
from functools import cache

import psutil

# psutil derives start times from clock ticks since boot; two readings of the same process can
# differ by a tick or a rounding of the boot time.
_CREATE_TIME_TOLERANCE = 1.0


@cache
def host_name() -> str:
    return socket.gethostname()


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    pid: int
    create_time: float

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(host_name(), pid, create_time(pid) or time.time())


def is_alive(
    host: str,
    pid: int,
    started: float,
    heartbeat_at: float | None,
    stale_after: float,
    now: float | None = None,
) -> bool:
    """Tell whether the process (host, pid, start time) still runs.

    On this host the answer is exact. On another host it is a guess from the heartbeat: silent
    for more than ``stale_after`` seconds means dead.
    """
    if host == host_name():
        if not psutil.pid_exists(pid):
            return False
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            return abs(proc.create_time() - started) <= _CREATE_TIME_TOLERANCE
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return False
        except psutil.AccessDenied:
            return True
    last_sign = heartbeat_at if heartbeat_at is not None else started
    return ((now if now is not None else time.time()) - last_sign) <= stale_after


def detect_kind() -> str:
    """``notebook`` inside any interactive IPython shell, ``script`` otherwise.

    A kernel's shell may be a subclass with another name (Colab's is), so it is recognised by
    having a kernel, not by its class name. ``%run script.py`` inside a notebook is still the
    notebook: the cell is what ran.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return "script"
    shell = ipython.get_ipython()
    if shell is None:
        return "script"
    return "notebook"
