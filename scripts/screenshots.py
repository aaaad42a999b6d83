"""Retake the README's screenshots of the web console (docs/screenshots/console-*.png).

With `make run` going (the shared RabbitMQ up; best on a fresh `.omnibot/` data directory), this
does in a real browser what a new user does: signs in, imports and publishes the example agent,
creates and activates a channel against the sandbox, saves the sandbox's rules on its webhook URL,
has a customer talk to the bot and an operator answer after the transfer, makes a real dead letter
(the sandbox refuses one reply), and photographs each page on the way. Before each picture the
page is checked for secrets: the sandbox's API key never, a webhook secret only where the
channel's webhook URL is meant to be copied.

    scripts/screenshots            # the console on 127.0.0.1:8081, the sandbox on :8090
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import subprocess
from pathlib import Path

import aiohttp
from playwright.async_api import Page, ViewportSize, async_playwright, expect

from omnibot.testkit.chromium import CHROMIUM_FLAGS, chromium_executable
from omnibot.testkit.sandbox import SandboxClient

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
AGENT = ROOT / "examples" / "agents" / "support-demo.json"
EMAIL = "lead@example.com"
USER = {"name": "Анна", "email": "anna@example.com"}
DESKTOP = ViewportSize(width=1280, height=860)
PHONE = ViewportSize(width=390, height=844)


def make_account(password: str) -> None:
    """The lead's console account, made (or its password reset) with the command line."""
    omnibot = str(ROOT / ".venv" / "bin" / "omnibot")
    for argv in (
        [omnibot, "user", "create", "--email", EMAIL, "--role", "admin", "--password-stdin"],
        [omnibot, "user", "reset-password", "--email", EMAIL, "--password-stdin"],
    ):
        # Our own command line with fixed arguments; the password goes in on stdin.
        done = subprocess.run(argv, input=password + "\n", text=True, capture_output=True, cwd=ROOT)  # noqa: S603
        if done.returncode == 0:
            return
    raise SystemExit(f"could not make the console account: {done.stderr.strip()}")


class Camera:
    def __init__(self, page: Page, forbidden: list[str], webhook_secret: list[str]) -> None:
        self.page, self.forbidden, self.webhook_secret = page, forbidden, webhook_secret

    async def take(self, name: str, *, webhook_url_shown: bool = False, full_page: bool = False) -> None:
        html = await self.page.content()
        for secret in self.forbidden:
            if secret and secret in html:
                raise SystemExit(f"{name}: a secret is on the page; no screenshot taken")
        if not webhook_url_shown:
            for secret in self.webhook_secret:
                if secret in html:
                    raise SystemExit(f"{name}: the webhook secret is on a page that should not show it")
        await self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)
        print(f"docs/screenshots/{name}.png")


async def shoot(console: str, sandbox_url: str, password: str) -> None:
    async with aiohttp.ClientSession() as session:
        await photograph(console, sandbox_url, SandboxClient(session, sandbox_url), password)


async def photograph(console: str, sandbox_url: str, sandbox: SandboxClient, password: str) -> None:
    account = await sandbox.info()
    executable = chromium_executable()
    if executable is None:
        raise SystemExit("chromium is not installed: run scripts/ensure-tools")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        context = await browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="UTC")
        page = await context.new_page()
        webhook_secret: list[str] = []
        camera = Camera(page, [account["api_key"]], webhook_secret)

        await page.goto(f"{console}/sign-in")
        await page.get_by_label("E-mail").fill(EMAIL)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("navigation", name="Main navigation")).to_be_visible()

        # Agents: import and publish; the version's flow diagram.
        await page.goto(f"{console}/agents")
        await page.get_by_label("Agent file").set_input_files(str(AGENT))
        await page.get_by_label("Publish").check()
        await page.get_by_role("button", name="Import").click()
        await expect(page.get_by_role("status")).to_contain_text("Imported")
        await page.get_by_role("status").get_by_role("link", name="Flow diagram").click()
        diagram = page.locator("figure.diagram img")
        await expect(diagram).to_be_visible()
        await diagram.evaluate("img => img.decode()")  # drawn, not just placed
        await camera.take("console-agent", full_page=True)

        # Channels: the type panel, the creation panel filled in, CREATE & ACTIVATE.
        await page.goto(f"{console}/channels")
        await page.get_by_role("link", name="Create channel").first.click()
        await page.get_by_role("link", name=re.compile(r"^Omnidesk")).click()
        await page.get_by_label("Title").fill("Support")
        await page.get_by_label("Omnidesk domain").fill(sandbox_url)
        await page.get_by_label("Omnidesk API key").fill(account["api_key"])
        await page.get_by_label("Omnidesk user e-mail").fill(account["bot_email"])
        await page.get_by_label("Default agent").select_option("support-demo")
        webhook_url = await page.get_by_label("Chatbot webhook URL").input_value()
        webhook_secret.append(webhook_url.rsplit("/", 1)[-1])
        await camera.take("console-channel-new", webhook_url_shown=True, full_page=True)
        await page.get_by_role("button", name="CREATE & ACTIVATE").click()
        await expect(page.locator("section.checks")).to_be_visible()
        # The channel's page comes as the answer to the form: its id is in its links.
        chats_link = await page.get_by_role("link", name="Chats of this channel").get_attribute("href")
        found = re.search(r"channel=(\d+)", chats_link or "")
        if found is None or not await page.locator("li.check.passed").count() == 4:
            raise SystemExit("the channel was not created and activated: see the checks on its page")
        channel = int(found.group(1))
        await camera.take("console-channel", webhook_url_shown=True)

        # The sandbox's two rules on the webhook URL, as the seed's (conditioned on the status
        # only, so the customer's words reach omnibot while the operator has the chat).
        await sandbox.clear_rules()
        await sandbox.add_seed_rules(webhook_url, require_label=False)

        # A conversation: the bot, the transfer ("2": Оператор), the operator's replies.
        case = int((await sandbox.customer_message("Добрый день", user=USER))["case_id"])
        await sandbox.wait_replies(case, 2)
        await sandbox.customer_message("2", user=USER, case_id=case)
        await sandbox.wait_replies(case, 3)
        await sandbox.operator_reply(case, "Здравствуйте, Анна! Меня зовут Ольга. Чем помочь?")
        await sandbox.customer_message("Заказ 4711 не пришёл", user=USER, case_id=case)
        await sandbox.operator_reply(case, "Вижу: он в пути, курьер привезёт его завтра до 18:00.")
        await sandbox.customer_message("Спасибо!", user=USER, case_id=case)
        await page.goto(f"{console}/channels/{channel}/chats/{case}")
        await expect(page.locator("li.msg.operator")).to_have_count(2, timeout=20_000)
        await expect(page.locator("ol.conversation")).to_contain_text("Спасибо!")
        await camera.take("console-chat", full_page=True)
        await page.set_viewport_size(PHONE)
        await camera.take("console-chat-phone", full_page=True)
        await page.set_viewport_size(DESKTOP)

        # A real dead letter: the sandbox refuses the bot's first reply in a new case.
        refusal = {"status": 403, "body": {"error": "staff_has_not_access"}}
        await sandbox.add_fault(
            {"method": "POST", "path": r"/api/cases/\d+/messages\.json", "responses": [refusal]}
        )
        other = int((await sandbox.customer_message("Здравствуйте, можно вопрос?", user=USER))["case_id"])
        await sandbox.wait_replies(other, 1)
        await page.goto(f"{console}/dead-letters")
        await expect(page.locator("tr[data-dead]")).to_have_count(1, timeout=60_000)
        await camera.take("console-dead-letters")

        await page.goto(f"{console}/chats")
        await camera.take("console-chats")
        await page.goto(f"{console}/channels")
        await camera.take("console-channels", webhook_url_shown=True)
        await page.goto(f"{console}/audit")
        await camera.take("console-audit")
        await page.goto(f"{console}/")
        await camera.take("console-overview")
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--console", default=f"http://127.0.0.1:{os.environ.get('ADMIN_PORT', '8081')}")
    parser.add_argument("--sandbox", default=f"http://127.0.0.1:{os.environ.get('SANDBOX_PORT', '8090')}")
    args = parser.parse_args()
    password = secrets.token_urlsafe(18)  # a throwaway: this run signs in once
    make_account(password)
    SHOTS.mkdir(parents=True, exist_ok=True)
    asyncio.run(shoot(args.console, args.sandbox, password))


if __name__ == "__main__":
    main()
