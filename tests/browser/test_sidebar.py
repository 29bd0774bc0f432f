"""The sidebar in a real JupyterLab, driven by a real Chromium.

A notebook runs a loop with ``%tv_checkpoint`` in a kernel JupyterLab started; the test clicks
Pause, Resume and Stop in the tablevault sidebar as a person would, and checks what the
process really did through the store.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tablevault import VaultClient
from tablevault.config import TableVaultSettings
from tests.waiting import wait_for

pytestmark = pytest.mark.browser

# Debian's Chromium, as the README installs it; "playwright" uses the browser that
# `playwright install` downloaded, where a machine can download it (the public CI workflow).
CHROMIUM = os.environ.get("TABLEVAULT_TEST_CHROMIUM", "/usr/bin/chromium")
LAUNCH = {} if CHROMIUM == "playwright" else {"executable_path": CHROMIUM}
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PROCESS = "browser_loop"
# The status bar's kernel item; the toolbar's indicator says idle before the kernel connects.
KERNEL_IDLE = "ipykernel) | Idle"
LOOP = f"""%load_ext tablevault
%tv_init {PROCESS}
import time
from tablevault import Vault
vault = Vault()
i = 0
while True:
    i += 1
    vault.append_record("ticks", {{"i": i}})
    time.sleep(0.1)
    %tv_checkpoint"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningLab:
    """A JupyterLab server on a free loopback port, with a token of its own."""

    def __init__(self, root: Path, env: dict[str, str], *extra: str) -> None:
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (root / "server.log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--allow-root",
                "--no-browser",
                f"--port={self.port}",
                "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}",
                *extra,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        wait_for(self.answering, "JupyterLab to listen", 60)

    def answering(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    if LAUNCH and not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM}: apt-get install chromium, as the README says"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("lab")
    home = root / ".store"
    config = root / ".jupyter"
    # The news prompt would cover the page; it is JupyterLab's, not ours.
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "loop",
                "metadata": {},
                "outputs": [],
                "source": LOOP,
            }
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / "loop.ipynb").write_text(json.dumps(notebook))
    env = {
        **os.environ,
        "TABLEVAULT_HOME": str(home),
        "TABLEVAULT_POLL_INTERVAL": "0.1",
        "TABLEVAULT_HEARTBEAT_INTERVAL": "0.5",
        "JUPYTER_CONFIG_DIR": str(config),
    }
    env.pop("TABLEVAULT_PARENT", None)
    server = RunningLab(root, env)
    try:
        yield {"url": server.url, "token": server.token, "home": home, "root": root}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(lab: dict[str, object]) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(args=CHROMIUM_FLAGS, **LAUNCH)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, lab: dict[str, object]) -> Iterator[Page]:
    tab = browser.new_page(viewport={"width": 1280, "height": 800})
    tab.goto(f"{lab['url']}/lab/tree/loop.ipynb?reset&token={lab['token']}")
    tab.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    yield tab
    tab.close()


@pytest.fixture(scope="module")
def client(lab: dict[str, object]) -> VaultClient:
    return VaultClient(settings=TableVaultSettings(home=str(lab["home"])), requester="test")


def ticks(client: VaultClient) -> int:
    return len(client.query_record_list("ticks"))


def row(name: str, status: str | None = None) -> str:
    selector = f'#tablevault-panel .jp-tv-row[data-name="{name}"]'
    return selector + (f'[data-status="{status}"]' if status else "")


def test_pause_resume_and_stop_from_the_sidebar(
    page: Page, client: VaultClient, lab: dict[str, object]
) -> None:
    # Given the loop running in a kernel that JupyterLab started
    page.wait_for_selector(f"text={KERNEL_IDLE}", timeout=60_000)
    page.click(".jp-Cell .cm-content")
    page.keyboard.press("Shift+Enter")
    wait_for(lambda: ticks(client) > 3, "the loop to register", 60)

    # When the sidebar is opened, the loop is listed as running
    page.click('.lm-TabBar-tab[data-id="tablevault-panel"]')
    page.wait_for_selector(row(PROCESS, "running"), timeout=20_000)

    # When Pause is clicked, the row turns paused and the loop stops progressing
    page.click(f"{row(PROCESS)} .jp-tv-pause")
    page.wait_for_selector(row(PROCESS, "paused"), timeout=20_000)
    assert client.get_process(PROCESS).status == "paused"
    held = ticks(client)
    time.sleep(1.5)
    assert ticks(client) == held

    # When Resume is clicked, the row turns running and the loop goes on
    page.click(f"{row(PROCESS)} .jp-tv-resume")
    page.wait_for_selector(row(PROCESS, "running"), timeout=20_000)
    wait_for(lambda: ticks(client) > held + 3, "the loop to progress again")
    shot = Path(os.environ.get("TABLEVAULT_SCREENSHOT_DIR", lab["root"])) / "sidebar.png"
    page.screenshot(path=str(shot))

    # When Stop is clicked and confirmed, the cell ends and is recorded as stopped
    page.click(f"{row(PROCESS)} .jp-tv-stop")
    page.click(".jp-Dialog .jp-mod-warn")
    wait_for(
        lambda: client.query_process_code(PROCESS)[-1].status == "stopped",
        "the cell to be recorded stopped",
    )
    page.wait_for_selector(".jp-OutputArea-output:has-text('stopped')", timeout=20_000)
    stopped_at = ticks(client)

    # Then the kernel kept its variables: a new cell sees the loop's counter
    page.wait_for_selector(f"text={KERNEL_IDLE}", timeout=20_000)
    page.click(".jp-Notebook .jp-Cell:last-child .cm-content")
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type('print(f"i={i}, alive")')
    page.keyboard.press("Shift+Enter")
    output = page.wait_for_selector(".jp-OutputArea-output:has-text('alive')", timeout=20_000)
    assert output.inner_text().strip() == f"i={stopped_at}, alive"
    assert client.get_process(PROCESS).status == "running"


def test_a_missing_server_extension_is_named(
    browser: Browser, lab: dict[str, object], tmp_path: Path
) -> None:
    # Given a JupyterLab whose tablevault server extension is disabled
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(Path(str(lab["root"])) / ".jupyter")}
    server = RunningLab(tmp_path, env, '--ServerApp.jpserver_extensions={"tablevault": False}')
    tab = browser.new_page()
    try:
        tab.goto(f"{server.url}/lab?reset&token={server.token}")
        # When the sidebar opens
        tab.click('.lm-TabBar-tab[data-id="tablevault-panel"]', timeout=60_000)
        # Then it says the server extension is missing rather than showing an empty list
        message = tab.wait_for_selector("#tablevault-panel .jp-tv-missing", timeout=20_000)
        assert "not installed or enabled" in message.inner_text()
    finally:
        tab.close()
        server.stop()


def luminance(css_color: str) -> float:
    """Relative brightness, 0 to 1, of an ``rgb(r, g, b)`` colour."""
    red, green, blue = (
        int(part)
        for part in css_color[css_color.index("(") + 1 : css_color.index(")")].split(",")[:3]
    )
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def test_the_panel_follows_the_dark_theme_and_offers_its_commands(
    browser: Browser, lab: dict[str, object]
) -> None:
    # Given JupyterLab switched to its dark theme, through its own settings API
    import json as json_module
    import urllib.request

    themes = f"{lab['url']}/lab/api/settings/@jupyterlab/apputils-extension:themes"

    def set_theme(theme: str) -> None:
        body = json_module.dumps({"raw": json_module.dumps({"theme": theme})}).encode()
        request = urllib.request.Request(
            themes,
            data=body,
            method="PUT",
            headers={"Authorization": f"token {lab['token']}", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=30).close()

    set_theme("JupyterLab Dark")
    tab = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        tab.goto(f"{lab['url']}/lab?reset&token={lab['token']}")
        tab.wait_for_selector("body[data-jp-theme-light='false']", state="attached", timeout=60_000)

        # When the sidebar opens
        tab.click('.lm-TabBar-tab[data-id="tablevault-panel"]', timeout=60_000)
        panel = tab.wait_for_selector(
            "#tablevault-panel .jp-tv-panel, #tablevault-panel", timeout=20_000
        )

        # Then it is drawn in the theme's colours: dark background, light text
        colours = panel.evaluate(
            "node => { const style = getComputedStyle(node.querySelector('.jp-tv-panel') "
            "|| node); return [style.backgroundColor, style.color]; }"
        )
        assert luminance(colours[0]) < 0.3, colours
        assert luminance(colours[1]) > 0.6, colours

        # And the command palette lists its commands
        tab.keyboard.press("Control+Shift+C")
        tab.keyboard.type("TableVault")
        tab.wait_for_selector(".lm-CommandPalette-itemLabel:has-text('TableVault')", timeout=20_000)
        labels = tab.locator(".lm-CommandPalette-itemLabel").all_inner_texts()
        assert {"Show TableVault Processes", "Refresh TableVault Processes"} <= set(labels)
    finally:
        tab.close()
        set_theme("JupyterLab Light")
