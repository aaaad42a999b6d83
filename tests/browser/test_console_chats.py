"""A chat in the console after a sandbox conversation: the transcript as a conversation with times,
the slot, the variables without secrets, updating while open; transfer to an operator and return
to the bot from the chat page; customer text shown as text (no script runs); no secret in any page."""

from __future__ import annotations

import re

from playwright.async_api import Dialog, Page, expect

from omnibot.sandbox.faults import FaultResponse
from tests.browser.console_kit import Console, sign_in, stack, webhook_secret
from tests.harness import (
    add_rules,
    chat_record,
    customer_says,
    eventually,
    operator_says,
    setup_channel,
    wait_bot_messages,
)

__all__ = ["stack"]

XSS = "<img src=x onerror=alert(1)>"
TEMPLATE = "{{channel_webhook_token}}"


async def test_transcript_transfer_and_return(page: Page, stack: Console) -> None:
    assert stack.sandbox is not None
    channel = await setup_channel(stack.settings, stack.sandbox, stack.sandbox_url)
    await add_rules(stack.sandbox_url, channel["webhook_url"])
    dialogs: list[Dialog] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog))

    case = (await customer_says(stack.sandbox_url, f"Привет {XSS} {TEMPLATE}"))["case_id"]
    await wait_bot_messages(stack.sandbox, case, 2, timeout=20)
    await customer_says(stack.sandbox_url, "1", case_id=case)
    await wait_bot_messages(stack.sandbox, case, 3, timeout=20)

    await sign_in(page, stack)
    await page.get_by_role("navigation").get_by_role("link", name="Chats").click()
    await expect(page.locator("tr[data-chat]")).to_have_count(1)
    await page.get_by_label("Owner").select_option("operator")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_text("No chats match")).to_be_visible()
    await page.get_by_label("Owner").select_option("bot")
    await page.get_by_label("Updated within").select_option("1h")
    await page.get_by_role("button", name="Filter").click()
    await page.get_by_role("link", name=str(case), exact=True).click()

    conversation = page.locator("ol.conversation")
    customer = conversation.locator("li.msg.customer").first
    await expect(customer).to_contain_text(f"Привет {XSS} {TEMPLATE}")  # as text, not markup
    await expect(customer.locator("time")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    await expect(conversation.locator("li.msg.bot").first).to_contain_text("Здравствуйте, Anna!")
    await expect(page.locator("#slot")).to_have_text("ask")
    await expect(page.locator("#owner")).to_contain_text("bot")
    assert await page.locator("main img").count() == 0
    assert dialogs == []
    html = await page.content()
    assert stack.sandbox.api_key not in html
    assert webhook_secret(channel["webhook_url"]) not in html
    assert "channel_webhook_token</th>" not in html  # never among the variables

    # Updates while open: the customer's next message appears without a reload.
    await customer_says(stack.sandbox_url, "12345", case_id=case)
    await expect(conversation).to_contain_text("12345", timeout=15_000)
    await expect(conversation).to_contain_text("Заказ 12345 принят.")

    await page.get_by_role("button", name="Transfer to operator").click()
    await expect(page.locator("#owner")).to_contain_text("operator")
    await expect(page.get_by_role("button", name="Return to bot")).to_be_visible()

    async def label_removed() -> bool:
        return (
            stack.sandbox is not None and stack.sandbox.bot_label_id not in stack.sandbox.cases[case].labels
        )

    await eventually(label_removed, timeout=15, what="the bot label removed from the case")
    await expect(conversation.locator("li.msg.system")).to_contain_text("handed to an operator")

    await page.get_by_role("button", name="Return to bot").click()
    await expect(page.locator("#owner")).to_contain_text("bot")
    record = await chat_record(stack.settings, channel["id"], case)
    assert record is not None and record["owner"] == "bot"
    assert dialogs == []

    for path in ("/", "/channels", f"/channels/{channel['id']}", "/chats", "/audit", "/agents"):
        await page.goto(stack.at(path))
        assert stack.sandbox.api_key not in await page.content(), path
    await page.goto(stack.at("/audit"))
    await expect(page.locator("table.audit")).to_contain_text("chat.transfer")
    await expect(page.locator("table.audit")).to_contain_text("chat.return")


async def test_an_operators_reply_is_a_line_of_the_conversation(page: Page, stack: Console) -> None:
    assert stack.sandbox is not None
    channel = await setup_channel(stack.settings, stack.sandbox, stack.sandbox_url)
    # The seed's rules (status only): the customer's words reach omnibot while the operator has the chat.
    await add_rules(stack.sandbox_url, channel["webhook_url"], require_label=False)
    case = (await customer_says(stack.sandbox_url, "Здравствуйте"))["case_id"]
    await wait_bot_messages(stack.sandbox, case, 2, timeout=20)

    await sign_in(page, stack)
    await page.goto(stack.at(f"/channels/{channel['id']}/chats/{case}"))
    await page.get_by_role("button", name="Transfer to operator").click()
    await expect(page.locator("#owner")).to_contain_text("operator")
    sandbox = stack.sandbox

    async def label_removed() -> bool:
        return sandbox.bot_label_id not in sandbox.cases[case].labels

    await eventually(label_removed, timeout=15, what="the bot label removed from the case")

    await operator_says(stack.sandbox_url, case, "Здравствуйте, это Ольга. Чем помочь?")
    await customer_says(stack.sandbox_url, "Где мой заказ?", case_id=case)
    conversation = page.locator("ol.conversation")
    operator = conversation.locator("li.msg.operator")
    await expect(operator).to_have_count(1, timeout=15_000)  # appears while the page is open
    await expect(operator).to_contain_text("Здравствуйте, это Ольга. Чем помочь?")
    await expect(operator.locator(".who")).to_have_text("operator")
    await expect(operator.locator("time")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    await expect(conversation.locator("li.msg").last).to_contain_text("Где мой заказ?")
    await expect(page.locator("#owner")).to_contain_text("operator")

    # Today's replies: the bot's two texts; not the transfer's note, not the operator's reply.
    await page.goto(stack.at("/"))
    replies = page.locator("[data-figure=replies-today]")
    await expect(replies).to_contain_text("Replies delivered today")
    await expect(replies).to_contain_text("since midnight UTC")
    await expect(replies.locator(".figure")).to_have_text("2")


async def test_dead_letter_replay(page: Page, stack: Console) -> None:
    assert stack.sandbox is not None
    channel = await setup_channel(stack.settings, stack.sandbox, stack.sandbox_url)
    await add_rules(stack.sandbox_url, channel["webhook_url"])
    refusal = FaultResponse(status=403, body={"error": "staff_has_not_access"})
    stack.sandbox.faults.add(method="POST", path=r"/api/cases/\d+/messages\.json", responses=[refusal])
    case = (await customer_says(stack.sandbox_url, "Привет"))["case_id"]
    await wait_bot_messages(stack.sandbox, case, 1, timeout=20)

    await sign_in(page, stack)
    await page.get_by_role("navigation").get_by_role("link", name="Dead letters").click()
    row = page.locator("tr[data-dead]")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("outbound")
    await expect(row).to_contain_text("staff_has_not_access")
    await expect(row).to_contain_text(f"{channel['id']}:{case}")
    await page.goto(stack.at("/"))
    await expect(page.locator("[data-figure=dead-letters] .figure")).to_have_text("1")
    await page.locator("[data-figure=dead-letters]").click()
    await page.get_by_role("button", name="Replay", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text("Re-driven: 1.")
    await expect(page.get_by_text("No dead letters")).to_be_visible()
    assert sorted(await wait_bot_messages(stack.sandbox, case, 2, timeout=20)) == sorted(
        ["Здравствуйте, Anna!", "Чем помочь?\n1. Статус заказа\n2. Оператор"]
    )
