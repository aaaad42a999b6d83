"""How Debian's Chromium is started headless on these machines, for the browser tests and for
`scripts/screenshots` (Playwright's own browser download cannot work here)."""

from __future__ import annotations

import os
import shutil

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
]


def chromium_executable() -> str | None:
    """`$CHROMIUM`, else the system's `chromium` (scripts/ensure-tools installs it)."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium")
