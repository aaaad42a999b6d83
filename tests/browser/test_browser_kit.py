"""The browser kit itself: Chromium starts, pages render, contexts are isolated and scripts run."""

from __future__ import annotations

from aiohttp import web
from playwright.async_api import Browser, Page, expect

from omnibot.testkit.ports import free_port


async def _serve(html: str) -> tuple[web.AppRunner, str]:
    async def index(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    async def cookie(_: web.Request) -> web.Response:
        response = web.Response(text="set")
        response.set_cookie("probe", "1")
        return response

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/cookie", cookie)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def test_page_renders_and_runs_script(page: Page) -> None:
    runner, base = await _serve("<h1>omnibot</h1><p id=out></p><script>out.textContent = 'ran'</script>")
    try:
        await page.goto(base)
        await expect(page.get_by_role("heading", name="omnibot")).to_be_visible()
        await expect(page.locator("#out")).to_have_text("ran")
    finally:
        await runner.cleanup()


async def test_contexts_do_not_share_cookies(browser: Browser) -> None:
    runner, base = await _serve("<p>x</p>")
    first = await browser.new_context()
    second = await browser.new_context()
    try:
        await (await first.new_page()).goto(f"{base}/cookie")
        assert [c["name"] for c in await first.cookies()] == ["probe"]
        assert await second.cookies() == []
    finally:
        await first.close()
        await second.close()
        await runner.cleanup()
