"""Fixtures shared by the integration tests: a page in Debian's headless Chromium (never downloaded), and the
script errors it saw."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"


def launch(pw):
    """Debian's headless Chromium (never a downloaded one), quiet: no update or sync traffic."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed: apt-get install -y chromium (.ci/run does)")
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])


def watch_errors(page) -> list[str]:
    """The page's script errors and console errors from now on, except the browser's own /favicon.ico."""
    errors: list[str] = []

    def on_console(msg) -> None:
        url = msg.location.get("url", "")
        if msg.type == "error" and not url.endswith("/favicon.ico"):
            errors.append(f"console: {msg.text} {url}")

    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", on_console)
    return errors


@pytest.fixture
def page() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="zh-CN")
        yield context.new_page()
        browser.close()


@pytest.fixture
def js_errors(page) -> Iterator[list[str]]:
    """Script errors and console errors (a CSP violation is one) seen while the test ran: none allowed.

    Except the browser's own request for /favicon.ico: the console ships no icon.
    """
    errors = watch_errors(page)
    yield errors
    assert errors == []


@pytest.fixture(scope="module")
def chromium() -> Iterator:
    """One headless Chromium for a whole module, for tests that open their own contexts (a viewport, touch, a
    fresh login each): starting the browser once per module keeps such modules fast."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        yield browser
        browser.close()
