"""Browser tests: Playwright driving Debian's Chromium, one browser process for the whole session.

Playwright's own browser download cannot work on these machines, so the browser is the system's
`chromium` (installed by `scripts/ensure-tools`). It is started once per session with a DevTools
port and every test connects to it over CDP from its own event loop: the rest of the suite's async
fixtures (RabbitMQ, MongoDB, services as tasks) live in the test's function-scoped loop, and a
Playwright connection is bound to the loop that made it, so a session-scoped Playwright object
could not be shared with them. Connecting costs a few hundred milliseconds; starting Chromium
costs seconds, and that happens once.

Each test gets a fresh browser context (its own cookies and storage), so tests never see each
other's sessions. On failure, a screenshot of every open page is kept under
`.omnibot/test-artifacts/` for the person reading the CI log.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from omnibot.testkit.chromium import CHROMIUM_FLAGS, chromium_executable
from omnibot.testkit.ports import free_port

ARTIFACTS = Path(".omnibot/test-artifacts")
# What a test waits for at most, for one expectation on a page (Playwright's own default is 5 s).
EXPECT_TIMEOUT_MS = 10_000


def _wait_for_devtools(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{port}/json/version"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode} before its DevTools port opened")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                return str(json.load(answer)["webSocketDebuggerUrl"])
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"chromium's DevTools port {port} did not open within {timeout_s} s")


@pytest.fixture(scope="session")
def chromium_endpoint() -> Iterator[str]:
    """The DevTools endpoint of one headless Chromium kept for the session."""
    executable = chromium_executable()
    if executable is None:
        pytest.fail("chromium is not installed: run scripts/ensure-tools (scripts/test does)")
    port = free_port()
    profile = tempfile.mkdtemp(prefix="omnibot-chromium-")
    process = subprocess.Popen(
        [executable, *CHROMIUM_FLAGS, f"--remote-debugging-port={port}", f"--user-data-dir={profile}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield _wait_for_devtools(port, process, timeout_s=30)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


@pytest_asyncio.fixture
async def browser(chromium_endpoint: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        connected = await playwright.chromium.connect_over_cdp(chromium_endpoint)
        yield connected
        # Closing a CDP connection leaves the shared browser running, as intended.
        await connected.close()


@pytest_asyncio.fixture
async def context(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    ctx.set_default_timeout(EXPECT_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, on failure)
            for number, open_page in enumerate(ctx.pages):
                name = f"{request.node.name}-{number}.png".replace("/", "_")
                # A crashed page must not hide the test's own failure.
                with contextlib.suppress(Exception):
                    await open_page.screenshot(path=str(ARTIFACTS / name), full_page=True)
        await ctx.close()


@pytest_asyncio.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    new_page = await context.new_page()
    yield new_page


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Keeps each phase's report on the test item, so `context` knows whether the test failed.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
