"""The sandbox playground's page on its own (no pipeline): live updates within a second, a
reconnect that catches up after the sandbox restarts, escaped text, no inline script, labels."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from playwright.async_api import ConsoleMessage, Dialog, Page, expect

from omnibot.sandbox.state import SandboxState
from omnibot.testkit.ports import free_port
from omnibot.testkit.sandbox import running_sandbox

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxState, str]]:
    async with running_sandbox(free_port(), SandboxState(filler_staff=2)) as running:
        yield running


async def bot_says(state: SandboxState, url: str, case_id: int, text: str) -> None:
    """What egress does: a reply through the Omnidesk API as the bot's staff member."""
    auth = {"Authorization": aiohttp.encode_basic_auth(state.bot_email, state.api_key)}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/api/cases/{case_id}/messages.json", json={"message": {"content": text}}, headers=auth
        ) as response,
    ):
        assert response.status == 201, await response.text()


async def open_live(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")


async def test_a_reply_appears_within_a_second_without_reloading(
    page: Page, sandbox: tuple[SandboxState, str]
) -> None:
    state, url = sandbox
    await open_live(page, url)
    await page.get_by_label("Customer name").fill("Анна")
    await page.get_by_role("button", name="New chat").click()
    await page.get_by_label("Message", exact=True).fill("Добрый день")
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.locator('[data-region="customer"] .bubble.from-customer')).to_contain_text(
        "Добрый день"
    )
    case_id = next(iter(state.cases))
    await expect(page).to_have_url(f"{url}/?case={case_id}")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    started = time.monotonic()
    await bot_says(state, url, case_id, "Здравствуйте, Анна!")
    await expect(page.locator('[data-region="customer"] .bubble.from-bot')).to_contain_text(
        "Здравствуйте, Анна!", timeout=1000
    )
    assert time.monotonic() - started < 1.0
    assert navigations == []  # no reload
    await expect(page.locator('[data-region="operator"] .entry.from-bot')).to_contain_text(
        "Здравствуйте, Анна!"
    )


async def test_the_page_reconnects_after_a_restart_and_catches_up(page: Page) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with running_sandbox(port, SandboxState(filler_staff=1)):
        await open_live(page, url)
    # The sandbox is gone: the page says so, then finds the new one and shows what it has.
    await expect(page.locator("#live")).not_to_have_attribute("data-state", "live")
    later = SandboxState(filler_staff=1)
    later.open_case(user=later.user_for(name="Пришедший после"), subject="x")
    async with running_sandbox(port, later):
        await expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=15_000)
        await expect(page.locator('[data-region="cases"]')).to_contain_text("Пришедший после")


async def test_what_customers_write_is_text_and_the_page_runs_no_inline_script(
    page: Page, sandbox: tuple[SandboxState, str]
) -> None:
    state, url = sandbox
    dialogs: list[str] = []
    violations: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("dialog", dismiss)
    page.on("console", console)
    evil = "<script>alert('x')</script><img src=x onerror=\"alert('y')\">"
    user = state.user_for(name="<b>Ева</b>")
    case = state.open_case(user=user, subject="x")
    state.add_customer_message(case.case_id, text=evil, files=[], base_url=url)
    await open_live(page, f"{url}/?case={case.case_id}")
    bubble = page.locator('[data-region="customer"] .bubble.from-customer .text')
    await expect(bubble).to_have_text(evil)
    await bot_says(state, url, case.case_id, evil)  # and when it arrives live
    await expect(page.locator('[data-region="customer"] .bubble.from-bot .text')).to_have_text(evil)
    await expect(page.locator('[data-region="cases"]')).to_contain_text("<b>Ева</b>")
    assert await page.locator('[data-region="customer"] img, [data-region="customer"] script').count() == 0
    assert dialogs == [] and violations == []


async def test_unticking_and_ticking_the_bot_label(page: Page, sandbox: tuple[SandboxState, str]) -> None:
    state, url = sandbox
    case = state.open_case(user=state.user_for(name="Анна"), subject="x")
    state.add_customer_message(case.case_id, text="hi", files=[], base_url=url)
    state.apply_incoming_rule_actions(case.case_id)
    await open_live(page, f"{url}/?case={case.case_id}")
    label = page.get_by_label("На боте", exact=True)
    responsible = page.locator('[data-region="operator"] [data-field="responsible"]')
    await expect(label).to_be_checked()
    await expect(responsible).to_have_text("Бот")
    await label.uncheck()
    await expect(responsible).to_have_text("Оператор 1")  # the seed's transfer rule
    assert case.labels == []
    await expect(page.locator('[data-region="cases"] .tag.human')).to_be_visible()
    await label.check()
    await expect(label).to_be_checked()
    assert case.labels == [state.bot_label_id]


async def test_fault_panel_outage_and_rate_limit_then_reset_empties_the_sandbox(
    page: Page, sandbox: tuple[SandboxState, str]
) -> None:
    state, url = sandbox
    state.open_case(user=state.user_for(name="Анна"), subject="x")
    state.add_rule(webhook_url="http://127.0.0.1:1/hook", on="incoming", require_label=True, body={})
    await open_live(page, url)
    faults = page.locator('[data-region="faults"]')
    await page.get_by_label("Seconds").fill("60")
    await page.get_by_label("Status", exact=True).fill("502")
    await page.get_by_role("button", name="Start outage").click()
    await expect(faults).to_contain_text("every API call answers 502")
    assert state.outage_status() == 502
    await page.get_by_role("button", name="End", exact=True).click()
    await expect(faults).to_contain_text("API up")
    await page.get_by_label("Per minute").fill("30")
    await page.get_by_role("button", name="Apply").click()
    await expect(faults.locator('[data-field="rate-limit"]')).to_have_text("30")

    reset = page.get_by_role("button", name="Reset")
    await reset.click()  # armed: a stray click empties nothing
    await expect(page.get_by_role("button", name="Reset: sure?")).to_be_visible()
    assert state.cases
    await page.get_by_role("button", name="Reset: sure?").click()
    await expect(page.locator('[data-region="cases"]')).to_contain_text("No cases yet")
    await expect(page.locator('[data-region="rules"]')).to_contain_text("No rules yet")
    assert state.cases == {} and state.rules == [] and state.rate_limiter.per_minute == 600
