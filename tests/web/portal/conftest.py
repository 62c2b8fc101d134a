"""The portal in a real browser: Debian's Chromium driven by Playwright, judged by axe-core.

One browser for the package (``browser``); each test opens visitors (``visit(...)``), each a
fresh browser context with its own cookies, language and screen. A visitor records
every URL the browser asked for (no secret may ever be in one), fails the test on a
Content-Security-Policy violation or a script error, checks pages with axe-core (no
serious or critical violation), and photographs the main pages: each photograph checks that
the page fits its screen (no sideways scrolling at phone or desktop width) and is a picture of
that width; only with ``MAILPROV_TEST_SCREENSHOTS=1`` (``make screenshots``) is it written
into ``docs/screenshots/portal/`` for the README (on the SQLite run only, so each file is
written once), so a test run leaves the checkout as it was.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import OwnerSite
from tests.web.test_requests import trust  # noqa: F401  (a fixture: the site's test CA and issuer)

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[3]
SCREENSHOTS = REPO / "docs" / "screenshots" / "portal"
#: Set to 1 to rewrite the README's screenshots (``make screenshots``); else none is written.
WRITE_SCREENSHOTS = os.environ.get("MAILPROV_TEST_SCREENSHOTS") == "1"
#: A phone: 390 x 844 CSS pixels (an iPhone 13-class screen), touch, mobile layout.
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 1,
    "is_mobile": True,
    "has_touch": True,
}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1100, "height": 900}}
ACCEPT = {"en": "en-GB,en;q=0.9", "ru": "ru-RU,ru;q=0.9,en;q=0.5"}
#: The innermost elements reaching past the screen's right edge (for an assertion's message).
WIDEST = """width => [...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > width
    && ![...e.children].some(c => c.getBoundingClientRect().right > width))
  .slice(0, 3).map(e => `${e.tagName.toLowerCase()}.${e.className}: ${e.textContent.slice(0, 40)}`)"""
#: The pages photographed on a phone (on a desktop: every page ``shot`` is called for).
PHONE_SHOTS = frozenset({"apply-taken", "confirm", "credentials", "account", "filters"})


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), launched once for these tests.

    Package scope, not session: while Playwright's sync API lives it keeps an event loop
    running in the main thread, and the suite's other tests call ``asyncio.run()`` there.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-test-deps.sh (apt-get chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@dataclass
class Visitor:
    """One person's browser (a fresh context) on the portal."""

    site: OwnerSite
    context: Any
    page: Any
    lang: str
    screen: str
    javascript: bool = True
    urls: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def open(self, path: str) -> Any:
        """Go to ``path`` on the portal; returns the response."""
        return self.page.goto(self.site.url + path)

    def text(self, selector: str = "main") -> str:
        """The visible text of ``selector``."""
        return str(self.page.inner_text(selector))

    def submit(self, selector: str) -> None:
        """Click the submit button ``selector`` and wait for the next page."""
        with self.page.expect_navigation():
            self.page.click(selector)

    def cookies(self) -> dict[str, dict[str, Any]]:
        """The browser's cookies for the portal, by name."""
        return {c["name"]: c for c in self.context.cookies(self.site.url)}

    def check_accessible(self) -> None:
        """axe-core finds no serious or critical violation on the page as it is now."""
        from axe_playwright_python.sync_playwright import Axe

        # axe-core is a script: in a page without JavaScript it would wait forever.
        assert self.javascript, "axe needs JavaScript; check the page in a visitor that has it"
        results = Axe().run(self.page)
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(n["target"][0] for n in v["nodes"][:3])
            for v in results.response["violations"]
            if v["impact"] in {"serious", "critical"}
        ]
        assert bad == [], f"axe on {self.page.url} ({self.lang}, {self.screen})"

    def shot(self, name: str) -> None:
        """Check the page with axe and that it fits its screen's width, and photograph it; the
        photograph goes into the README's folder only with MAILPROV_TEST_SCREENSHOTS=1."""
        self.check_accessible()
        width = self.page.viewport_size["width"]
        scrolled = self.page.evaluate("document.documentElement.scrollWidth")
        assert scrolled <= width, (
            f"{name} ({self.lang}, {self.screen}) is {scrolled}px wide: "
            + str(self.page.evaluate(WIDEST, width))
        )
        png = self.page.screenshot(full_page=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">I", png[16:20])[0] == width  # IHDR: the picture's width
        wanted = self.screen == "desktop" or name in PHONE_SHOTS
        if WRITE_SCREENSHOTS and wanted and self.site.store_url.startswith("sqlite"):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            (SCREENSHOTS / f"{self.lang}-{self.screen}-{name}.png").write_bytes(png)

    def assert_clean(self, *secrets: str) -> None:
        """No CSP violation or script error happened, and no secret was in any URL."""
        assert self.problems == []
        for secret in secrets:
            assert secret
            assert not any(secret in url for url in self.urls), secret


@pytest.fixture
def visit(owner: OwnerSite, browser: Any) -> Iterator[Any]:
    """``visit(lang="en", phone=False, javascript=True)`` -> a new :class:`Visitor`."""
    contexts: list[Any] = []

    def new(lang: str = "en", *, phone: bool = False, javascript: bool = True) -> Visitor:
        context = browser.new_context(
            locale="ru-RU" if lang == "ru" else "en-GB",
            extra_http_headers={"Accept-Language": ACCEPT[lang]},
            java_script_enabled=javascript,
            **(PHONE if phone else DESKTOP),
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        visitor = Visitor(owner, context, page, lang, "phone" if phone else "desktop", javascript)
        page.on("request", lambda request: visitor.urls.append(request.url))
        page.on(
            "console",
            lambda message: (
                visitor.problems.append(message.text)
                if re.search(r"Content.Security.Policy|Refused to", message.text)
                else None
            ),
        )
        page.on("pageerror", lambda error: visitor.problems.append(str(error)))
        return visitor

    yield new
    for context in contexts:
        context.close()
