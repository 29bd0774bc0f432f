"""Exceptions raised by tablevault.

Every error that tablevault raises on purpose derives from :class:`TableVaultError`::

    TableVaultError
    ├── InvalidInputError      a bad name, record, interval or option (also a ValueError)
    ├── ProcessNotFoundError   no process was ever registered under that name (also a LookupError)
    ├── NameTakenError         a live process already holds that name
    ├── ProcessStateError      the request does not fit the process's state (not paused, ended)
    └── StoreError             the store failed or cannot be reached
        └── StoreUnavailableError

:class:`StopRequested` is not an error: it is how a checkpoint ends the code that asked for it
when another process requested a stop. It derives from :class:`BaseException`, like
:class:`KeyboardInterrupt`, so that ``except Exception`` in user code does not swallow it. In a
script the checkpoint raises :class:`ScriptStopped`, which is also a :class:`SystemExit`, so the
interpreter unwinds (``finally`` blocks and atexit handlers run) and exits with
:data:`EXIT_STOPPED`.
"""

from __future__ import annotations

#: Exit status of a script that ended because another process asked it to stop.
EXIT_STOPPED = 3


class TableVaultError(Exception):
    """Base class of the errors tablevault raises on purpose."""


class InvalidInputError(TableVaultError, ValueError):
    """An argument was not acceptable; the message names it."""


class ProcessNotFoundError(TableVaultError, LookupError):
    """No process was ever registered under the given name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no process named {name!r} is registered")
        self.name = name


class NameTakenError(TableVaultError):
    """A live process already holds the name another process asked for."""

    def __init__(self, name: str, pid: int, host: str) -> None:
        super().__init__(
            f"the name {name!r} is held by a live process (pid {pid} on {host}); "
            "choose another name or stop that process first"
        )
        self.name = name
        self.pid = pid
        self.host = host


class ProcessStateError(TableVaultError):
    """The request does not fit the state the process is in."""


class StoreError(TableVaultError):
    """The store failed; the message says what it was doing."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached or opened."""


class StopRequested(BaseException):
    """Raised at a checkpoint when another process asked this one to stop."""

    def __init__(self, requester: str, request_id: int) -> None:
        super().__init__(f"stopped at a checkpoint at the request of {requester}")
        self.requester = requester
        self.request_id = request_id


class ScriptStopped(StopRequested, SystemExit):
    """The form of :class:`StopRequested` raised in scripts: it exits with EXIT_STOPPED."""

    def __init__(self, requester: str, request_id: int) -> None:
        super().__init__(requester, request_id)
        self.code = EXIT_STOPPED
