"""Headless Chromium for the tests: Debian's ``chromium`` started here, driven over the DevTools protocol (Playwright).

The browser is started with the flags that keep it off the network on its own (no background requests, no
component updates), so every request a page makes is the page's own; :func:`open_page` records them with the
console messages and page errors.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)


def available() -> bool:
    """Chromium and the Playwright client are both installed."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return CHROMIUM is not None


@dataclass
class PageLog:
    """What a page did while it loaded: console messages (type, text), page errors, and every request URL."""

    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"] + self.errors


@contextmanager
def chromium() -> Iterator:
    """A running headless Chromium connected through Playwright; yields the Playwright ``Browser``."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="edgeforge-chromium-")
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = _devtools_endpoint(process)
        with sync_playwright() as playwright:
            browser = playwright.chromium.connect_over_cdp(endpoint)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_endpoint(process: subprocess.Popen) -> str:
    lines = []
    for line in process.stderr:
        lines.append(line)
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            return found.group(1)
    raise RuntimeError("chromium exited before it listened for DevTools:\n" + "".join(lines[-20:]))


@contextmanager
def open_page(
    browser, url: str, headers: dict[str, str] | None = None, javascript: bool = True, width: int = 1280
) -> Iterator:
    """Load ``url`` in a fresh context; yield ``(page, PageLog)`` once the load has settled.

    ``javascript=False`` loads it as a browser with JavaScript off would (the test's own queries still run).
    """
    context = browser.new_context(
        viewport={"width": width, "height": 900}, extra_http_headers=headers or {}, java_script_enabled=javascript
    )
    page = context.new_page()
    log = PageLog()
    page.on("console", lambda message: log.console.append((message.type, message.text)))
    page.on("pageerror", lambda error: log.errors.append(str(error)))
    page.on("request", lambda request: log.requests.append(request.url))
    try:
        page.goto(url, wait_until="networkidle")
        yield page, log
    finally:
        context.close()
