"""The three jobs done in a real browser (Debian's chromium, Playwright): a caseworker completes a
task; a GTO lead decides an escalation; a designer fixes and publishes a definition."""

from __future__ import annotations

from tests.browser import browser_page, screenshot, served, sign_in
from tests.conftest import Web


async def test_admin_signs_in_and_sees_the_territory(web: Web) -> None:
    async with served(web) as base, browser_page() as page:
        await sign_in(page, base, web, "admin@example.org")
        assert page.url.endswith("/admin")
        await page.get_by_role("heading", name="Territoire", exact=True).wait_for()
        assert await page.get_by_text("Mission Locale du Chablais").count() >= 1
        await screenshot(page, "admin-territoire")
