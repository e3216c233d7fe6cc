"""What the browser tests share: Debian's headless Chromium (`scripts/install-browser`, run by `make test`),
driven by Playwright's Python package, which talks to the installed browser: nothing downloads a browser."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


def require_chromium() -> None:
    """A missing browser fails the test (a skip would pass unnoticed), saying how to install it."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package. `make test` installs "
            "it (scripts/install-browser); by hand, as root: apt-get install -y --no-install-recommends chromium",
            pytrace=False,
        )


def _fresh(shots: Path) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):
        old.unlink()


@asynccontextmanager
async def chromium_page(
    shots: Path,
    viewport: tuple[int, int] = (1920, 1000),
    *,
    requests: list[str] | None = None,
    console: list[str] | None = None,
) -> AsyncIterator[Page]:
    """A page of Debian's Chromium, headless, with a fresh profile and a `viewport` (width, height). Screenshots
    go to `shots` (its old ones removed first; on failure the page is saved there as failure.png). `requests`
    and `console`, when given, collect the URL of every request the page makes and every console message."""
    await asyncio.to_thread(_fresh, shots)
    width, height = viewport
    with tempfile.TemporaryDirectory(prefix="irflow-chromium-") as profile:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": width, "height": height},
            )
            context.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            page = context.pages[0] if context.pages else await context.new_page()
            if requests is not None:
                page.on("request", lambda request: requests.append(request.url))
            if console is not None:
                page.on("console", lambda message: console.append(message.text))
            try:
                yield page
            except BaseException:
                with contextlib.suppress(Exception):
                    await page.screenshot(path=shots / "failure.png", full_page=True)
                raise
            finally:
                await context.close()
