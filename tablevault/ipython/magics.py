"""The ``%tv_*`` magics: checkpoints, control requests and a process table from a notebook.

``%load_ext tablevault`` adds them; each one's help is ``%tv_stop?`` and so on. A bad
argument, an unknown process or a refused request raises ``UsageError``, which IPython shows
as one line with no traceback.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..client import VaultClient
from ..errors import TableVaultError
from ..formatting import process_table
from ..vault import Vault, active_vault

T = TypeVar("T")


@magics_class
class TableVaultMagics(Magics):
    """Checkpoints and control of tablevault processes from IPython."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._client: VaultClient | None = None

    def _requester(self) -> VaultClient:
        """This kernel's vault, so requests name it; a plain client when it has none."""
        vault = active_vault()
        if vault is not None:
            return vault
        if self._client is None:
            self._client = _usage(VaultClient)
        return self._client

    # Checkpoints ---------------------------------------------------------------------------

    @magic_arguments()
    @line_magic
    def tv_checkpoint(self, line: str) -> None:
        """A safe point: stop here, or pause until resumed, if another process asked.

        The same as ``vault.checkpoint_execution()``. Put it in the loops of long cells.
        A stop ends the cell with one line saying who asked; the kernel and its variables
        stay. A pause waits here until a resume or a stop; the interrupt button ends the
        wait too.
        """
        if line.strip():  # an argument is a mistake; parsing says which
            _parse(self.tv_checkpoint, line)
        vault = active_vault()
        if vault is None:
            raise UsageError("this kernel is not registered: run %load_ext tablevault first")
        vault.checkpoint_execution()

    # Requests ------------------------------------------------------------------------------

    @magic_arguments()
    @argument(
        "name",
        metavar="NAME",
        help="the process to stop, as %%tv_ps lists it (quote a name with spaces)",
    )
    @line_magic
    def tv_stop(self, line: str) -> None:
        """Ask a process to stop at its next checkpoint.

        A script exits with status 3; a notebook's running cell ends and its kernel stays.
        """
        args = _parse(self.tv_stop, line)
        self._request("stop", args.name)

    @magic_arguments()
    @argument(
        "name",
        metavar="NAME",
        help="the process to pause, as %%tv_ps lists it (quote a name with spaces)",
    )
    @line_magic
    def tv_pause(self, line: str) -> None:
        """Ask a process to pause at its next checkpoint, until %tv_resume or %tv_stop."""
        args = _parse(self.tv_pause, line)
        self._request("pause", args.name)

    @magic_arguments()
    @argument(
        "name",
        metavar="NAME",
        help="the process to resume, as %%tv_ps lists it (quote a name with spaces)",
    )
    @line_magic
    def tv_resume(self, line: str) -> None:
        """Let a paused process go on (or withdraw a pause it has not reached yet)."""
        args = _parse(self.tv_resume, line)
        self._request("resume", args.name)

    def _request(self, action: str, name: str) -> None:
        client = self._requester()
        send = {
            "stop": client.stop_execution,
            "pause": client.pause_execution,
            "resume": client.resume_execution,
        }[action]
        request = _usage(send, name)
        print(f"{action} of {request.target_name!r}: request {request.id}, {request.state}")

    # Looking -------------------------------------------------------------------------------

    @magic_arguments()
    @argument("--all", action="store_true", help="include processes that have ended")
    @line_magic
    def tv_ps(self, line: str) -> None:
        """Show tablevault's processes, as `tablevault ps` does.

        Live processes only, unless --all. This kernel's row is marked with *.
        """
        args = _parse(self.tv_ps, line)
        client = self._requester()
        runs = _usage(client.list_processes, live_only=not args.all)
        if not runs:
            print("no processes" if args.all else "no live processes (--all shows ended ones)")
            return
        vault = active_vault()
        this_run = vault.run.run_id if vault is not None and vault.run is not None else None
        print(process_table(client, runs, marked_run_id=this_run))

    # Naming --------------------------------------------------------------------------------

    @magic_arguments()
    @argument("name", metavar="NAME", help="the name other processes will use for this kernel")
    @argument("--user", help="the user this kernel runs for (default: the OS user)")
    @argument("--description", help="free text, searchable with query_process_list")
    @line_magic
    def tv_init(self, line: str) -> None:
        """Register this kernel under NAME, or rename it; the cells recorded so far stay.

        The same as ``Vault(process_name=NAME, user_id=USER, description=DESCRIPTION)``.
        """
        args = _parse(self.tv_init, line)
        vault = _usage(
            Vault, user_id=args.user, process_name=args.name, description=args.description
        )
        if vault.run is None:
            raise UsageError("the store is unavailable; this kernel runs unregistered")
        print(f"this kernel is {vault.process_name!r}, for user {vault.user_id!r}")


def _parse(magic: Any, line: str) -> Any:
    """The magic's arguments, quoted as in a shell (IPython's own splitting keeps quotes)."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot read the arguments {line!r}: {exc}") from exc
    return magic.parser.parse_args(argv)


def _usage(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``call``; tablevault's errors become IPython's one-line UsageError."""
    try:
        return call(*args, **kwargs)
    except TableVaultError as exc:
        raise UsageError(str(exc)) from exc
