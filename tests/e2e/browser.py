"""Driving JupyterLab in headless Debian Chromium through Playwright (no browser download).

``scripts/install-browser.sh`` installs ``/usr/bin/chromium`` (apt) and the ``playwright``
package (its wheel carries the driver); we never run ``playwright install``: Chromium is
launched from its Debian path with a fresh profile directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = Path(os.environ.get("E2E_SCREENSHOT_DIR", "/tmp"))


def find_chromium() -> str | None:
    """The Chromium executable, or None (``$CHROMIUM`` first, then Debian's paths)."""
    for candidate in (os.environ.get("CHROMIUM", ""), *CHROMIUM_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def missing_reason() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (run scripts/install-browser.sh .venv)"
    if find_chromium() is None:
        return (
            "no Chromium found at /usr/bin/chromium after scripts/install-browser.sh"
            " (apt-get install chromium failed or is not allowed here)"
        )
    return None


@contextmanager
def chromium() -> Iterator[BrowserContext]:
    """A headless Chromium context with a fresh profile, closed (and removed) afterwards."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    assert executable is not None, missing_reason()
    profile = tempfile.mkdtemp(prefix="e2e-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_FLAGS
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under /tmp (or $E2E_SCREENSHOT_DIR) and return its path."""
    path = SCREENSHOTS / f"e2e-{name}-{int(time.time())}.png"
    try:
        page.screenshot(path=str(path), full_page=True)
    except Exception as error:  # the page may be gone; the test failure matters more
        path = path.with_suffix(".txt")
        path.write_text(f"no screenshot: {error}\n", encoding="utf-8")
    return path


def fresh_workspace_url(lab_url: str) -> str:
    """``lab_url`` (``.../lab?token=...``) turned into a new, empty JupyterLab workspace, so
    that no notebook restored from an earlier visit hides the launcher."""
    parts = urllib.parse.urlsplit(lab_url)
    path = parts.path.rstrip("/")
    if path.endswith("/lab"):
        path += f"/workspaces/e2e-{secrets.token_hex(4)}"
    query = "&".join(q for q in ("reset", parts.query) if q)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def run_cell_in_new_notebook(
    page: Page,
    lab_url: str,
    code: str,
    kernel_display_name: str | None = None,
    timeout_s: float = 60.0,
) -> str:
    """Open JupyterLab at ``lab_url`` (token included), create a notebook from the launcher,
    run ``code`` in its first cell and return the cell's output text.

    ``kernel_display_name`` picks the launcher's notebook card whose title contains it (the
    first notebook card otherwise).
    """
    timeout_ms = timeout_s * 1000
    page.set_default_timeout(timeout_ms)
    page.goto(fresh_workspace_url(lab_url))
    cards = page.locator('.jp-LauncherCard[data-category="Notebook"]')
    if kernel_display_name is not None:
        cards = cards.filter(has_text=kernel_display_name)
    cards.first.click()
    # A new notebook panel whose kernel reached "Idle" (the status bar says so).
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").last
    notebook.locator(".jp-Cell .cm-content").first.wait_for()
    page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for()
    editor = notebook.locator(".jp-Cell .cm-content").first
    editor.click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    output = notebook.locator(".jp-Cell").first.locator(".jp-OutputArea-output").first
    output.wait_for()
    return output.inner_text().strip()


def error_dialog_of_new_notebook(
    page: Page, lab_url: str, kernel_display_name: str, timeout_s: float = 60.0
) -> str:
    """Open JupyterLab, create a notebook with the kernel whose launcher card names
    ``kernel_display_name`` (one that cannot start) and return the text of the error dialog
    JupyterLab shows."""
    page.set_default_timeout(timeout_s * 1000)
    page.goto(fresh_workspace_url(lab_url))
    cards = page.locator('.jp-LauncherCard[data-category="Notebook"]')
    cards.filter(has_text=kernel_display_name).first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.first.wait_for()
    return str(dialog.first.inner_text()).strip()
