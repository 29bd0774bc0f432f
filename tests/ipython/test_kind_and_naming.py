"""What kind of process a Vault registers as, and the default name of a notebook kernel.

The kind table is checked where each row really happens: in kernels, in the IPython terminal
application, in plain Python, and under ``%run``.
"""

from __future__ import annotations

import getpass
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tablevault import VaultClient

from .conftest import Kernel, KernelFactory, kernel_env, live_run, unique_name

PRINT_KIND = "from tablevault.identity import detect_kind\nprint(detect_kind())"

# A kernel whose shell class has another name, as Google Colab's does.
COLAB_LIKE = '''\
from traitlets import Type
from ipykernel.ipkernel import IPythonKernel
from ipykernel.zmqshell import ZMQInteractiveShell


class Shell(ZMQInteractiveShell):
    """A kernel shell under another class name."""


class Kernel(IPythonKernel):
    shell_class = Type(Shell)
'''


@pytest.fixture(scope="module")
def kind_in(
    start_kernel: KernelFactory,
    home: Path,
    ipython_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], str]:
    """``kind_in(place)``: what detect_kind() answers in that place."""
    folder = tmp_path_factory.mktemp("kinds")
    (folder / "colab_like.py").write_text(COLAB_LIKE)
    (folder / "print_kind.py").write_text(PRINT_KIND + "\n")
    env = kernel_env(home, ipython_dir)
    env["PYTHONPATH"] += f":{folder}"

    kernels: dict[tuple[str, ...], Kernel] = {}

    def in_kernel(code: str, *args: str) -> str:
        if args not in kernels:
            kernels[args] = start_kernel(env={"PYTHONPATH": env["PYTHONPATH"]}, args=list(args))
        return kernels[args].ok(code).stdout.strip()

    def in_process(*argv: str) -> str:
        return (
            subprocess.run(
                [sys.executable, *argv],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
            .stdout.strip()
            .splitlines()[-1]
        )

    places: dict[str, Callable[[], str]] = {
        "ipykernel": lambda: in_kernel(PRINT_KIND),
        "kernel with a renamed shell class": lambda: in_kernel(
            "print(type(get_ipython()).__name__)\n" + PRINT_KIND,
            "--IPKernelApp.kernel_class=colab_like.Kernel",
        ).replace("\n", " "),
        "IPython terminal": lambda: in_process(
            "-m", "IPython", "--quick", "--HistoryManager.hist_file=:memory:", "-c", PRINT_KIND
        ),
        "plain script": lambda: in_process(str(folder / "print_kind.py")),
        "script importing IPython": lambda: in_process("-c", "import IPython\n" + PRINT_KIND),
        "%run script.py in a kernel": lambda: in_kernel(f"%run {folder / 'print_kind.py'}"),
    }
    return lambda place: places[place]()


@pytest.mark.parametrize(
    ("place", "kind"),
    [
        ("ipykernel", "notebook"),
        ("kernel with a renamed shell class", "Shell notebook"),
        ("IPython terminal", "notebook"),
        ("plain script", "script"),
        ("script importing IPython", "script"),
        ("%run script.py in a kernel", "notebook"),
    ],
)
def test_kind_detection(kind_in: Callable[[str], str], place: str, kind: str) -> None:
    assert kind_in(place) == kind


def test_jupyter_session_name_is_the_default_and_a_second_kernel_gets_a_suffix(
    start_kernel: KernelFactory, client: VaultClient
) -> None:
    # Given two kernels on the same notebook, as Jupyter starts them
    notebook = f"work/{unique_name('analysis')}.ipynb"
    first = start_kernel(env={"JPY_SESSION_NAME": notebook})
    second = start_kernel(env={"JPY_SESSION_NAME": notebook})

    # When both load the extension
    first.ok("%load_ext tablevault")
    second.ok("%load_ext tablevault")

    # Then the first has the notebook's path, the second a distinct name, both the OS user's
    one, two = live_run(client, first.pid), live_run(client, second.pid)
    assert one.name == notebook
    assert two.name == f"{notebook} [2]"
    assert one.user_id == two.user_id == getpass.getuser()


def test_a_vscode_notebook_is_named_by_its_path_under_home(
    start_kernel: KernelFactory, client: VaultClient
) -> None:
    # Given a kernel where VS Code left the notebook's path
    kernel = start_kernel()
    relative = f"projects/{unique_name('vscode')}.ipynb"
    kernel.ok(f"import pathlib\n__vsc_ipynb_file__ = str(pathlib.Path.home() / {relative!r})")

    # When it loads the extension
    kernel.ok("%load_ext tablevault")

    # Then its name is that path, relative to the home folder
    assert live_run(client, kernel.pid).name == relative


def test_loading_names_the_vault_for_the_user_unless_the_name_is_taken(
    start_kernel: KernelFactory,
) -> None:
    # Given one kernel with a variable called vault, and one without
    taken, free = start_kernel(), start_kernel()
    taken.ok("vault = 'mine'")

    # When both load the extension
    taken.ok("%load_ext tablevault")
    free.ok("%load_ext tablevault")

    # Then the user's variable is left alone, and elsewhere `vault` is the kernel's Vault
    assert taken.ok("print(vault)").stdout == "mine\n"
    assert (
        free.ok(
            "print(type(vault).__name__, vault is __import__('tablevault').active_vault())"
        ).stdout
        == "Vault True\n"
    )
