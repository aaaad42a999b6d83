"""The seed's flow in the browser: import agents (a broken file, then a good one, published), see
the flow diagram, create a channel in the panel against the sandbox (CANCEL leaves nothing, a wrong
e-mail fails its check and leaves the channel inactive, fixed it activates), copy the webhook,
and the bot answers in the sandbox on that URL."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.async_api import Page, expect

from omnibot.testkit.channels import management
from tests.browser.console_kit import Console, sign_in, stack
from tests.harness import FIXTURES, add_rules, customer_says, wait_bot_messages

__all__ = ["stack"]

BROKEN = {
    "format": "omnibot/agent@1",
    "name": "broken",
    "start": "hello",
    "slots": [
        {"id": "hello", "type": "text", "text": "Hi", "next": "nowhere"},
        {"id": "odd", "type": "teleport"},
        {"id": "ask", "type": "input", "next": "hello"},
    ],
}


async def test_agents_import_publish_and_diagram(page: Page, stack: Console, tmp_path: Path) -> None:
    await sign_in(page, stack)
    await page.get_by_role("navigation").get_by_role("link", name="Agents").click()
    await expect(page.get_by_text("No agents yet")).to_be_visible()
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(BROKEN))
    await page.get_by_label("Agent file").set_input_files(str(broken))
    await page.get_by_role("button", name="Import").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("The file was not imported")
    await expect(alert.locator("li[data-slot=hello]")).to_contain_text("nowhere")
    await expect(alert.locator("li[data-slot=odd]")).to_contain_text("teleport")
    await expect(alert.locator("li[data-slot=ask]")).to_contain_text("variable")
    ops, client = await management(stack.settings)
    try:
        assert (await ops.agents.list_agents()).items == []  # nothing saved
    finally:
        await client.close()

    await page.get_by_label("Agent file").set_input_files(str(FIXTURES / "agents" / "pipeline-demo.json"))
    await page.get_by_role("button", name="Import").click()
    await expect(page.get_by_role("status")).to_contain_text("Imported pipeline-demo version 1.")
    await page.get_by_role("link", name="Flow diagram").click()
    await expect(page.get_by_role("heading", name="pipeline-demo · Version 1")).to_be_visible()
    diagram = page.get_by_role("img", name="Flow diagram of pipeline-demo version 1")
    await expect(diagram).to_be_visible()
    assert await diagram.evaluate("img => img.complete && img.naturalWidth > 100")
    svg = await page.request.get(page.url + "/diagram.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    body = await svg.text()
    assert body.count('<g class="node') == 5 and "Статус заказа" in body  # slots, button labels
    await page.get_by_role("button", name="Publish").click()
    await expect(page.get_by_role("status")).to_contain_text("Published version 1.")
    await expect(page.get_by_role("heading", name="pipeline-demo · Version 1")).to_contain_text("published")
    download_wait = page.wait_for_event("download")
    await page.get_by_role("link", name="Export").click()
    download = await download_wait
    exported = json.loads(Path(await download.path()).read_text())  # noqa: ASYNC240 (a small file)
    assert exported["name"] == "pipeline-demo" and len(exported["slots"]) == 5


async def test_create_and_activate_a_channel_like_the_seed(page: Page, stack: Console) -> None:
    assert stack.sandbox is not None
    ops, client = await management(stack.settings)
    try:
        await ops.agents.import_agent((FIXTURES / "agents" / "pipeline-demo.json").read_bytes(), publish=True)
    finally:
        await client.close()
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.url)
    await sign_in(page, stack)

    # CANCEL: nothing saved, the list stays empty.
    await page.goto(stack.at("/channels"))
    await page.get_by_role("link", name="Create channel").first.click()
    await page.get_by_role("link", name="Omnidesk").click()
    await page.get_by_role("link", name="CANCEL").click()
    await expect(page.get_by_text("No channels yet")).to_be_visible()

    await page.get_by_role("link", name="Create channel").first.click()
    await expect(page.get_by_role("heading", name="Choose the channel type")).to_be_visible()
    await page.get_by_role("link", name="Omnidesk").click()
    await expect(page.get_by_label("Title")).to_have_attribute("placeholder", "New channel")
    await expect(page.get_by_label("Omnidesk API key")).to_have_attribute("type", "password")
    webhook = page.get_by_label("Chatbot webhook URL")
    url = await webhook.input_value()
    assert url.startswith(f"{stack.settings.public_base_url}/webhooks/omnidesk/")
    await page.get_by_role("button", name="Copy this webhook").click()
    assert await page.evaluate("navigator.clipboard.readText()") == url

    await page.get_by_label("Title").fill("Support")
    await page.get_by_label("Omnidesk domain").fill(stack.sandbox_url)
    await page.get_by_label("Omnidesk API key").fill(stack.sandbox.api_key)
    await page.get_by_label("Omnidesk user e-mail").fill("nobody@sandbox.local")
    await page.get_by_label("Default agent").select_option("pipeline-demo")
    await page.get_by_role("button", name="CREATE & ACTIVATE").click()

    checks = page.get_by_role("region", name="Activation checks")
    await expect(checks.locator("li.check")).to_have_count(4)
    failed = checks.locator("li.check.failed")
    await expect(failed).to_have_count(1)
    await expect(failed).to_contain_text("Omnidesk answers with these credentials")
    await expect(failed).to_contain_text("nobody@sandbox.local")
    await expect(page.get_by_role("alert")).to_contain_text("saved but not active")
    await expect(page.get_by_role("heading", name="Support")).to_contain_text("inactive")
    # The channel kept the URL shown (and copied) before it existed.
    assert await page.get_by_label("Chatbot webhook URL").first.input_value() == url
    assert stack.sandbox.api_key not in await page.content()

    await page.get_by_label("Omnidesk user e-mail").fill(stack.sandbox.bot_email)
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved.")
    await page.get_by_role("button", name="Activate").click()
    await expect(checks.locator("li.check.passed")).to_have_count(4)
    await expect(page.get_by_role("status")).to_contain_text("The channel is active.")
    # Bot label left empty: found by its title, and the check says which.
    await expect(checks.locator("li[data-check=omnidesk]")).to_contain_text(
        f"bot label «На боте» is id {stack.sandbox.bot_label_id}"
    )
    await expect(page.locator(".setup")).to_contain_text(str(stack.sandbox.bot_label_id))
    rule = await page.get_by_label("Rule body").input_value()
    assert json.loads(rule)["chat_id"] == "[case_id]"
    await page.get_by_role("button", name="Copy rule body").click()
    assert await page.evaluate("navigator.clipboard.readText()") == rule

    # The seed's two rules with the copied URL: the bot answers in the sandbox.
    await add_rules(stack.sandbox_url, url)
    case = (await customer_says(stack.sandbox_url, "Привет"))["case_id"]
    assert await wait_bot_messages(stack.sandbox, case, 2, timeout=20) == [
        "Здравствуйте, Anna!",
        "Чем помочь?\n1. Статус заказа\n2. Оператор",
    ]
    await page.get_by_role("navigation").get_by_role("link", name="Channels").click()
    row = page.locator("tr[data-channel]")
    await expect(row).to_contain_text("Support")
    await expect(row).to_contain_text("active")
    await page.get_by_role("navigation").get_by_role("link", name="Audit log").click()
    await expect(page.locator("table.audit")).to_contain_text("channel.create_activate")
    await expect(page.locator("table.audit")).to_contain_text("channel.activate")


async def test_channel_form_refusals_show_next_to_their_fields(page: Page, stack: Console) -> None:
    await sign_in(page, stack)
    await page.goto(stack.at("/channels/new/omnidesk"))
    url = await page.get_by_label("Chatbot webhook URL").input_value()
    await page.get_by_label("Omnidesk domain").fill("ftp://acme")
    await page.get_by_label("Omnidesk API key").fill("secret-key-typed-once")
    await page.get_by_label("Omnidesk user e-mail").fill("not-an-email")
    await page.get_by_role("button", name="CREATE", exact=True).click()
    await expect(page.locator("#domain-problem")).to_contain_text("http(s) URL")
    await expect(page.locator("#email-problem")).to_contain_text("e-mail address")
    await expect(page.locator("#agent-problem")).to_be_visible()
    # The typed key is not sent back; the reserved URL stays the same.
    assert "secret-key-typed-once" not in await page.content()
    assert await page.get_by_label("Chatbot webhook URL").input_value() == url
    ops, client = await management(stack.settings)
    try:
        assert (await ops.channels.list_channels()).items == []
    finally:
        await client.close()
