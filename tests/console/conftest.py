"""A real `wxcrm serve` and one Chromium for the whole run: the console is judged in a browser.

Debian's Chromium (/usr/bin/chromium) drives the tests. Without it they skip, saying so;
WXCRM_REQUIRE_BROWSER=1 (set by .ci/run) turns that skip into a failure.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import BACKENDS
from tests.live import (
    STAFF_PASSWORD,
    create_staff,
    migrate_database,
    own_database,
    served,
    server_env,
)

CHROMIUM = Path(os.environ.get("WXCRM_CHROMIUM", "/usr/bin/chromium"))
MISSING_BROWSER = (
    f"BROWSER TESTS SKIPPED: no Chromium at {CHROMIUM}. Install it with "
    "`sudo apt-get install chromium chromium-l10n fonts-noto-cjk`"
    " (or set WXCRM_CHROMIUM to its path)."
)
XSS_NAME = "<img src=x onerror=alert(1)>"
HAVE_CHROMIUM = CHROMIUM.exists()
_shots: list[Path] = []


@dataclass(frozen=True)
class Staff:
    username: str
    role: str = "advisor"
    name: str | None = None
    phone: str | None = None


# conftest's `console`: an advisor, a manager, an admin, a to-be-suspended advisor, an advisor
# whose name is markup, and one whose password is guessed at.
STAFF = (
    Staff("advisor1"),
    Staff("manager1", "manager"),
    Staff("admin1", "admin"),
    Staff("leaver"),
    Staff("xss", name=XSS_NAME),
    Staff("guessed"),
)


@dataclass
class Console:
    url: str
    env: dict[str, str]
    # Where this run's screenshots go; None on the second database, whose pages look the same.
    shots: Path | None

    async def sign_in(self, page: Page, username: str, password: str = STAFF_PASSWORD) -> None:
        await page.goto(f"{self.url}/login")
        await page.get_by_label("用户名").fill(username)
        await page.get_by_label("密码").fill(password)
        await page.get_by_role("button", name="登录").click()
        await page.wait_for_load_state()

    async def screenshot(self, page: Page, name: str) -> None:
        if self.shots is None:
            return
        path = self.shots / f"{name}.png"
        await page.screenshot(path=path, full_page=True)
        _shots.append(path)


TABLET_WIDTH = 768


async def assert_fits_a_tablet(page: Page) -> None:
    """The page does not scroll sideways at a tablet's width (a table may, in its own box)."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    path = await page.evaluate("location.pathname")
    assert width <= TABLET_WIDTH, f"{path} is {width - TABLET_WIDTH} px wider than a tablet"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        if os.environ.get("WXCRM_REQUIRE_BROWSER") == "1":
            pytest.fail(MISSING_BROWSER.replace("SKIPPED", "REQUIRED"), pytrace=False)
        pytest.skip(MISSING_BROWSER)
    # Chromium formats date inputs (年/月/日) by its own UI language, not the page's locale:
    # on Linux that is LANGUAGE, with Debian's chromium-l10n holding the Chinese strings.
    args = ["--lang=zh-CN", *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    language = {**os.environ, "LANGUAGE": "zh_CN"}
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=args, env=language
        )
        try:
            yield launched
        finally:
            await launched.close()


@asynccontextmanager
async def serve_console(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    staff: Iterable[Staff] = STAFF,
    **settings: str,
) -> AsyncIterator[Console]:
    """`wxcrm serve` for one module's browser tests, on the database the fixture's param names,
    with `staff` (password STAFF_PASSWORD) and `settings` on top of the test defaults."""
    backend: str = request.param
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    folder = tmp_path_factory.mktemp(f"console-{module}-{backend}")
    shots = None
    if backend == BACKENDS[0]:
        shots = tmp_path_factory.mktemp(f"console-screenshots-{module}", numbered=False)
    async with own_database(backend, folder) as database_url:
        env = server_env(database_url, folder, **settings)
        await migrate_database(env)
        for account in staff:
            await create_staff(
                env, account.username, account.role, name=account.name, phone=account.phone
            )
        async with served(env, folder) as server:
            yield Console(server.url, env, shots)


@pytest.fixture(scope="module", params=BACKENDS)
async def console(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Console]:
    """A served app with conftest's STAFF."""
    async with serve_console(request, tmp_path_factory) as served_console:
        yield served_console


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh browser context (no cookies) at desktop width."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    try:
        yield await context.new_page()
    finally:
        await context.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _shots:
        folders = sorted({str(path.parent) for path in _shots})
        terminalreporter.write_line(f"console screenshots: {', '.join(folders)}")
