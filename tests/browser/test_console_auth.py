"""Signing in and out, wrong credentials, throttling, roles, CSRF, headers and languages."""

from __future__ import annotations

import re

from playwright.async_api import Browser, Page, expect
from pymongo import AsyncMongoClient

from omnibot.admin.users import MongoUserStore
from omnibot.testkit.channels import management
from tests.browser.console_kit import ADMIN, VIEWER, Console, console, demo_channel, sign_in
from tests.harness import FIXTURES

__all__ = ["console"]


async def test_sign_in_and_out(page: Page, console: Console) -> None:
    await page.goto(console.at("/channels"))
    await expect(page).to_have_url(re.compile(r"/sign-in\?next=(%2F|/)channels$"))
    await page.get_by_label("E-mail").fill(ADMIN[0])
    await page.get_by_label("Password").fill(ADMIN[1])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(console.at("/channels"))
    await expect(page.get_by_role("heading", name="Channels")).to_be_visible()
    for label in ("Overview", "Channels", "Agents", "Chats", "Dead letters", "Audit log"):
        await expect(
            page.get_by_role("navigation").get_by_role("link", name=label, exact=True)
        ).to_be_visible()
    cookie = next(c for c in await page.context.cookies() if c["name"] == "omnibot_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["expires"] > 0  # sessions expire
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await page.goto(console.at("/"))
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()


async def test_wrong_credentials_get_one_message_and_are_slowed_down(page: Page, console: Console) -> None:
    async def attempt(email: str, password: str) -> str:
        await page.goto(console.at("/sign-in"))
        await page.get_by_label("E-mail").fill(email)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Sign in").click()
        return await page.get_by_role("alert").inner_text()

    wrong_password = await attempt(ADMIN[0], "not-the-password")
    unknown_user = await attempt("nobody@example.com", ADMIN[1])
    assert wrong_password == unknown_user == "Wrong e-mail or password."
    await attempt(ADMIN[0], "still-not-it")
    await attempt(ADMIN[0], "nor-this-one")
    # Now even the right password waits: the account is slowed down.
    assert (await attempt(ADMIN[0], ADMIN[1])).startswith("Too many attempts. Try again in")
    assert "omnibot_session" not in [c["name"] for c in await page.context.cookies()]


async def test_a_disabled_account_loses_its_session(page: Page, console: Console) -> None:
    await sign_in(page, console, VIEWER)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(console.settings.mongodb_url)
    try:
        await MongoUserStore(client[console.settings.mongodb_db]).disable(VIEWER[0])
    finally:
        await client.close()
    await page.goto(console.at("/agents"))
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()


async def test_viewer_reads_but_cannot_change_anything(page: Page, console: Console) -> None:
    channel = await demo_channel(console.settings)
    await sign_in(page, console, VIEWER)
    for path in ("/channels", f"/channels/{channel.id}", "/agents", "/agents/pipeline-demo/versions/1"):
        await page.goto(console.at(path))
        await expect(page.locator("main")).to_be_visible()
        # No changing control on any page: no forms posting anywhere but sign-out.
        forms = await page.locator("main form[method=post]").count()
        assert forms == 0, path
        for name in ("Create channel", "Import", "Publish", "Activate", "Delete", "Save"):
            assert await page.get_by_role("button", name=name, exact=True).count() == 0, (path, name)
    # The webhook URL (it holds the secret) is for admins only.
    assert channel.webhook_url not in await page.content()
    # Sent by hand, with a valid session and CSRF token, a change is refused all the same.
    csrf = await page.locator("header input[name=_csrf]").get_attribute("value")
    answer = await page.request.post(
        console.at(f"/channels/{channel.id}/delete"), form={"_csrf": csrf or ""}, max_redirects=0
    )
    assert answer.status == 403
    assert "can only read" in await answer.text()
    ops, client = await management(console.settings)
    try:
        assert (await ops.channels.show_channel(channel.id)).id == channel.id
    finally:
        await client.close()


async def test_a_post_without_the_csrf_token_is_refused(page: Page, console: Console) -> None:
    ops, client = await management(console.settings)
    try:
        await ops.agents.import_agent((FIXTURES / "agents" / "pipeline-demo.json").read_bytes())
    finally:
        await client.close()
    await sign_in(page, console)
    forms: list[dict[str, str | float | bool]] = [{}, {"_csrf": "forged-token-forged-token-forged"}]
    for form in forms:
        answer = await page.request.post(
            console.at("/agents/pipeline-demo/versions/1/publish"), form=form, max_redirects=0
        )
        assert answer.status == 403
        assert "form has expired" in await answer.text()
    ops, client = await management(console.settings)
    try:
        assert (await ops.agents.show_agent("pipeline-demo")).published_version is None
    finally:
        await client.close()


async def test_security_headers_and_no_cache(page: Page, console: Console) -> None:
    await sign_in(page, console)
    for path in ("/", "/channels", "/sign-in", "/static/console.js"):
        answer = await page.request.get(console.at(path))
        headers = answer.headers
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert "unsafe-inline" not in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["cache-control"] == "no-store", path
    html = await (await page.request.get(console.at("/"))).text()
    assert "<script>" not in html and " on" + "click=" not in html  # no inline script at all
    # The JSON API next to it keeps its token.
    api = await page.request.get(console.at("/api/v1/channels"))
    assert api.status == 401 and (await api.json())["error"] == "unauthorized"


async def test_russian_from_accept_language_and_switchable(browser: Browser, console: Console) -> None:
    context = await browser.new_context(locale="ru-RU")  # Chromium sends Accept-Language: ru-RU
    page = await context.new_page()
    await page.goto(console.at("/sign-in"))
    await expect(page.get_by_role("button", name="Войти")).to_be_visible()
    await page.get_by_label("Пароль").fill(ADMIN[1])
    await page.get_by_label("E-mail").fill(ADMIN[0])
    await page.get_by_role("button", name="Войти").click()
    await expect(page.get_by_role("link", name="Каналы", exact=True)).to_be_visible()
    await page.get_by_role("link", name="EN", exact=True).click()
    await expect(page.get_by_role("link", name="Channels", exact=True)).to_be_visible()
    await page.goto(console.at("/agents"))
    await expect(page.get_by_role("heading", name="Agents")).to_be_visible()
    await context.close()
