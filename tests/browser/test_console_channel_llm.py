"""A channel's own language model on its page: the optional "LLM provider" section of the edit
form. The key is a password field that is never filled in or shown: typing one replaces the stored
key, leaving it empty keeps it, the box removes it; a refusal lands next to its field."""

from __future__ import annotations

from playwright.async_api import Page, expect

from omnibot.shared.channels import MongoChannelStore
from omnibot.shared.crypto import SecretBox
from omnibot.testkit.channels import management
from tests.browser.console_kit import Console, console, demo_channel, sign_in

__all__ = ["console"]

KEY = "sk-BROWSER-llm-key-9f3a"
NEWER = "sk-BROWSER-newer-key-77c1"


async def _stored_key(console: Console, channel_id: int) -> tuple[str, str, str]:
    """(base URL, model, the decrypted key or "") as MongoDB holds them."""
    _, client = await management(console.settings)
    try:
        channel = await MongoChannelStore(client[console.settings.mongodb_db]).get(channel_id)
    finally:
        await client.close()
    assert channel is not None
    key = (
        SecretBox(console.settings.secret_key).decrypt(channel.llm_api_key_enc)
        if channel.llm_api_key_enc
        else ""
    )
    return channel.llm_base_url, channel.llm_model, key


async def test_the_llm_provider_section_of_a_channel(page: Page, console: Console) -> None:
    channel = await demo_channel(console.settings)
    await sign_in(page, console)
    await page.goto(console.at(f"/channels/{channel.id}"))
    provider = page.locator("dd.llm-provider")
    await expect(provider).to_have_text("the server's (LLM_BASE_URL, LLM_MODEL)")
    section = page.get_by_role("group", name="LLM provider")
    await expect(section).to_be_visible()
    await expect(section.get_by_label("LLM API key")).to_have_attribute("type", "password")
    await expect(section).to_contain_text("No key of its own")

    # Credentials in the URL: refused next to the field, nothing saved, the typed key not sent back.
    await section.get_by_label("LLM base URL").fill("https://me:pw@llm.example/v1")
    await section.get_by_label("LLM model").fill("gpt-x")
    await section.get_by_label("LLM API key").fill(KEY)
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#llm_base_url-problem")).to_contain_text("must not contain credentials")
    assert KEY not in await page.content()
    await expect(page.get_by_label("LLM API key")).to_have_value("")
    assert await _stored_key(console, channel.id) == ("", "", "")

    await page.get_by_label("LLM base URL").fill("https://llm.example/v1")
    await page.get_by_label("LLM API key").fill(KEY)
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved.")
    await expect(provider).to_have_text("https://llm.example/v1, model gpt-x, key set")
    await expect(page.get_by_label("LLM base URL")).to_have_value("https://llm.example/v1")
    await expect(page.get_by_label("LLM API key")).to_have_value("")
    await expect(section).to_contain_text("A key is set")
    assert KEY not in await page.content()
    assert await _stored_key(console, channel.id) == ("https://llm.example/v1", "gpt-x", KEY)

    # Saved again with the key left empty: kept. A new one typed: replaced.
    await page.get_by_label("LLM model").fill("gpt-y")
    await page.get_by_role("button", name="Save").click()
    await expect(provider).to_have_text("https://llm.example/v1, model gpt-y, key set")
    assert await _stored_key(console, channel.id) == ("https://llm.example/v1", "gpt-y", KEY)
    await page.get_by_label("LLM API key").fill(NEWER)
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved.")
    assert (await _stored_key(console, channel.id))[2] == NEWER

    # The box removes the key; emptied fields go back to the server's settings.
    await page.get_by_label("Remove the key").check()
    await page.get_by_label("LLM base URL").fill("")
    await page.get_by_label("LLM model").fill("")
    await page.get_by_role("button", name="Save").click()
    await expect(provider).to_have_text("the server's (LLM_BASE_URL, LLM_MODEL)")
    await expect(section).to_contain_text("No key of its own")
    assert await _stored_key(console, channel.id) == ("", "", "")

    await page.get_by_role("navigation").get_by_role("link", name="Audit log").click()
    audit = page.locator("table.audit")
    await expect(audit).to_contain_text("llm api key replaced")
    await expect(audit).to_contain_text("llm api key removed")
    text = await audit.inner_text()
    assert KEY not in text and NEWER not in text
