"""The sandbox playground in Chromium, against the whole pipeline (ingress, dialog, egress, the
sandbox): rules saved through the page, a conversation as the customer, a file reaching the agent,
the transfer seen from the operator's side, the bot silent while the operator talks, the chat
handed back by ticking «На боте», and a 503 burst from the fault panel answered exactly once."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.async_api import FilePayload, Locator, Page, expect

from omnibot.dialog.service import serve_dialog
from omnibot.egress.service import serve_egress
from omnibot.ingress.service import serve_ingress
from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.ports import free_port
from omnibot.testkit.sandbox import running_sandbox
from omnibot.testkit.services import ServiceTask
from tests.harness import chat_record, eventually, setup_channel

pytestmark = pytest.mark.timeout(90)

GREETING = "Здравствуйте, Анна!"
MENU_LINES = ("Чем помочь?", "1. Статус заказа", "2. Прислать файл", "3. Оператор")
# A real 1×1 PNG, so the page shows it as a preview.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@dataclass
class Playground:
    settings: Settings
    sandbox: SandboxState
    url: str
    channel: dict[str, Any]

    @property
    def webhook_url(self) -> str:
        return str(self.channel["webhook_url"])


@pytest.fixture
async def playground(settings: Settings, broker: object, db: object) -> AsyncIterator[Playground]:
    async with running_sandbox(free_port()) as (state, url):
        services = []
        for name, serve in (("ingress", serve_ingress), ("dialog", serve_dialog), ("egress", serve_egress)):
            service = ServiceTask(name, serve, settings)
            await service.wait_ready()
            services.append(service)
        try:
            # The channel as a person creates it (management operations, as the CLI does).
            channel = await setup_channel(settings, state, url, agent_file="playground.json")
            yield Playground(settings, state, url, channel)
        finally:
            for service in reversed(services):
                await service.stop()


# --- what a person does on the page --------------------------------------------------------------


async def open_with_rules(page: Page, p: Playground, *, only_with_bot_label: bool = True) -> None:
    """Open the page and save both rules with the channel's webhook URL, as the seed says."""
    await page.goto(p.url)
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    await page.get_by_label("Incoming cases webhook").fill(p.webhook_url)
    await page.get_by_label("Changed cases webhook").fill(p.webhook_url)
    await page.get_by_label("fire only while the case carries").set_checked(only_with_bot_label)
    await page.get_by_role("button", name="Save rules").click()
    await expect(page.locator('[data-region="rules"] li')).to_have_count(2)
    assert [(r.on, r.webhook_url) for r in p.sandbox.rules] == [
        ("incoming", p.webhook_url),
        ("changed", p.webhook_url),
    ]


async def new_chat(page: Page, name: str) -> None:
    await page.get_by_label("Customer name").fill(name)
    await page.get_by_role("button", name="New chat").click()


async def customer_sends(page: Page, text: str, *, file: FilePayload | None = None) -> None:
    await page.get_by_label("Message", exact=True).fill(text)
    if file is not None:
        await page.get_by_label("Attach file").set_input_files(files=[file])
    await page.get_by_role("button", name="Send", exact=True).click()


def customer_window(page: Page) -> Locator:
    return page.locator('[data-region="customer"]')


def operator_view(page: Page) -> Locator:
    return page.locator('[data-region="operator"]')


def bot_bubbles(page: Page) -> Locator:
    return customer_window(page).locator(".bubble.from-bot")


async def expect_menu(bubble: Locator) -> None:
    for line in MENU_LINES:
        await expect(bubble).to_contain_text(line)


def shown_case(page: Page) -> int:
    return int(page.url.split("case=")[1])


# --- the scenarios ----------------------------------------------------------------------------


async def test_a_conversation_as_the_customer_with_a_file_reaching_the_agent(
    page: Page, playground: Playground
) -> None:
    p = playground
    await open_with_rules(page, p)
    await new_chat(page, "Анна")
    await customer_sends(page, "Добрый день")

    await expect(bot_bubbles(page)).to_have_count(2)
    await expect(bot_bubbles(page).nth(0)).to_contain_text(GREETING)
    await expect_menu(bot_bubbles(page).nth(1))
    case = shown_case(page)
    await expect(page.locator(f'[data-region="cases"] a[data-case="{case}"]')).to_contain_text("Анна")

    # Choosing by number.
    await customer_sends(page, "2")
    await expect(bot_bubbles(page)).to_have_count(3)
    await expect(bot_bubbles(page).nth(2)).to_contain_text("Пришлите файл")

    receipt = FilePayload(name="чек.png", mimeType="image/png", buffer=PNG)
    await customer_sends(page, "Вот чек", file=receipt)
    await expect(bot_bubbles(page)).to_have_count(5)  # the file's echo, then the menu again
    url = p.sandbox.customer_messages(case)[-1].attachments[0].url
    await expect(bot_bubbles(page).nth(3)).to_contain_text(f"Получил файл: {url}")  # client_attachments
    await expect_menu(bot_bubbles(page).nth(4))
    # The customer's own bubble shows the file as a preview, the operator sees it too.
    sent = customer_window(page).locator(".bubble.from-customer").last
    await expect(sent.locator("img")).to_have_attribute("alt", "чек.png")
    await expect(operator_view(page).locator(".entry.from-customer").last).to_contain_text("чек.png")
    assert bot_said(p, case)[3] == f"Получил файл: {url}"


async def test_transfer_operator_reply_bot_silence_and_handing_back(
    page: Page, playground: Playground
) -> None:
    p = playground
    # The seed's rules fire on every change, bot label or not: omnibot itself must keep quiet.
    await open_with_rules(page, p, only_with_bot_label=False)
    await new_chat(page, "Анна")
    await customer_sends(page, "Добрый день")
    await expect(bot_bubbles(page)).to_have_count(2)
    case = shown_case(page)
    bot_label = page.get_by_label("На боте", exact=True)
    await expect(bot_label).to_be_checked()
    await expect(operator_view(page).locator('[data-field="responsible"]')).to_have_text("Бот")

    # The transfer: the agent says so, egress leaves a note and takes the label off.
    await customer_sends(page, "3")
    await expect(bot_bubbles(page).nth(2)).to_contain_text("Перевожу на оператора")
    note = operator_view(page).locator(".entry.note")
    await expect(note).to_have_count(1)
    await expect(note).to_contain_text("internal note")
    await expect(note).to_contain_text("the agent transferred it")
    await expect(bot_label).not_to_be_checked()
    await expect(operator_view(page).locator('[data-field="responsible"]')).not_to_have_text("Бот")
    await expect(customer_window(page)).not_to_contain_text("the agent transferred it")  # notes are internal

    # The operator talks; the customer answers; the bot says nothing.
    await page.get_by_label("Operator reply").fill("Здравствуйте, я Ольга, помогу")
    await page.get_by_role("button", name="Reply as operator").click()
    operator_bubble = customer_window(page).locator(".bubble.from-operator")
    await expect(operator_bubble).to_contain_text("Здравствуйте, я Ольга, помогу")
    record = await chat_record(p.settings, p.channel["id"], case)
    assert record is not None and record["owner"] == "operator"
    seen = len(record["recent_inbound"])
    await customer_sends(page, "Спасибо, жду")
    await expect(customer_window(page).locator(".bubble.from-customer").last).to_contain_text("Спасибо, жду")
    await eventually(lambda: _inbound_count(p, case, seen + 1), what="the webhook reaching dialog")
    await expect(bot_bubbles(page)).to_have_count(3)
    assert len(bot_said(p, case)) == 3

    # Ticking «На боте» again hands the chat back: the next message gets the bot.
    await bot_label.check()
    await expect(operator_view(page).locator('[data-field="responsible"]')).to_have_text("Бот")
    await eventually(lambda: _owner_is(p, case, "bot"), what="the chat returning to the bot")
    await customer_sends(page, "Снова я")
    await expect(bot_bubbles(page)).to_have_count(5)
    await expect(bot_bubbles(page).nth(3)).to_contain_text(GREETING)
    await expect_menu(bot_bubbles(page).nth(4))


async def test_a_503_burst_from_the_fault_panel_is_retried_and_answered_once(
    page: Page, playground: Playground
) -> None:
    p = playground
    await open_with_rules(page, p)
    await page.get_by_label("Method").select_option("POST")
    await page.get_by_label("Path (regex)").fill(r"/messages\.json$")
    await page.get_by_label("Statuses").fill("503 503 503")
    await page.get_by_role("button", name="Add faults").click()
    await expect(page.locator('[data-region="faults"]')).to_contain_text("3 left")

    await new_chat(page, "Анна")
    await customer_sends(page, "Добрый день")
    await expect(bot_bubbles(page)).to_have_count(2)
    case = shown_case(page)
    calls = page.locator('[data-region="activity"] table.calls tbody tr')
    refused = calls.filter(has_text="503")
    await expect(refused).to_have_count(3)  # the retries are on screen
    await expect(calls.filter(has_text="POST").filter(has_text="201")).to_have_count(2)
    await expect(page.locator('[data-region="faults"]')).to_contain_text("Scripted answers none")
    await expect(bot_bubbles(page).nth(0)).to_contain_text(GREETING)
    await expect_menu(bot_bubbles(page).nth(1))
    assert bot_said(p, case) == [GREETING, "\n".join(MENU_LINES)]  # exactly one reply each
    webhooks = page.locator('[data-region="activity"] table.webhooks tbody tr')
    await expect(webhooks).to_have_count(1)
    await expect(webhooks).to_contain_text("200")


def bot_said(p: Playground, case: int) -> list[str]:
    return [m.content for m in p.sandbox.staff_messages(case) if m.staff_id == p.sandbox.bot_staff_id]


async def _inbound_count(p: Playground, case: int, count: int) -> bool:
    record = await chat_record(p.settings, p.channel["id"], case)
    return record is not None and len(record["recent_inbound"]) >= count


async def _owner_is(p: Playground, case: int, owner: str) -> bool:
    record = await chat_record(p.settings, p.channel["id"], case)
    return record is not None and record["owner"] == owner
