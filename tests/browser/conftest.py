"""Fixtures for the web console's browser tests: a gateway (MQTT broker + admin site on free
127.0.0.1 ports, a known admin token, LMDB in ``tmp_path``) and Playwright's sync API driving
Debian's Chromium. Chromium is never downloaded: without ``/usr/bin/chromium`` the tests fail
and say to run ``make browser``."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from admin.site import start_site
from broker.gateway.service import Device2Service
from tests.conftest import RunningBroker, make_config, start_gateway

TOKEN = "console-test-token-0123456789abcdefghijklmnop"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
TIMEOUT_MS = 10_000  # the machine is small and shared: generous, but every wait is bounded


@dataclass
class Gateway:
    """A running gateway: ``base`` is the admin site's URL, ``mqtt`` the plain MQTT address."""

    running: RunningBroker
    service: Device2Service
    cid: str
    base: str

    @property
    def mqtt(self) -> tuple[str, int]:
        return self.running.host, self.running.port

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the broker's loop (the service lives there)."""
        return self.running.call(fn)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    config = make_config(tmp_path, allow_anonymous=False)

    running, hooks_, stop = start_gateway(config, content_dir=tmp_path / "data" / "content")
    runner, port = asyncio.run_coroutine_threadsafe(
        start_site(hooks_.service, TOKEN, "127.0.0.1:0"), running.loop).result(10)
    try:
        yield Gateway(running, hooks_.service, hooks_.connector, f"http://127.0.0.1:{port}")
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), running.loop).result(10)
        stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(f"Chromium is not installed ({CHROMIUM} is missing): run `make browser` "
                    "(apt-get install chromium); the console tests never download a browser")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, gateway: Gateway) -> Iterator[Any]:
    """A fresh browser context on the gateway's console. Confirmation dialogs are accepted;
    an uncaught script error fails the test."""
    context = browser.new_context(base_url=gateway.base, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"uncaught errors in the console: {errors}"


def login(page: Any, token: str = TOKEN) -> None:
    """Open the console and log in; returns once the Devices page shows."""
    from playwright.sync_api import expect

    page.goto("/")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Devices", level=1)).to_be_visible()
