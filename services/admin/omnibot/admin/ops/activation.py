"""The four activation checks of a channel (agent, omnidesk, webhook, unique), each with a reason a
person can act on. The Omnidesk check reads the failure's type (`omnidesk_errors`), never its text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from omnibot.admin.ops.context import Context
from omnibot.admin.schemas import Check
from omnibot.shared.channels import Channel
from omnibot.shared.errors import OmnibotError, TransientError
from omnibot.shared.omnidesk import Account, OmnideskClient
from omnibot.shared.omnidesk_errors import (
    OmnideskNotFound,
    OmnideskRateLimited,
    OmnideskRefused,
    OmnideskTimeout,
    OmnideskUnauthorized,
    OmnideskUnreachable,
    StaffInactive,
    StaffNotFound,
)
from omnibot.shared.ratelimit import AccountThrottle

DEFAULT_BOT_LABEL = "На боте"  # the seed's label for chats on the bot
WebhookProbe = Callable[[str], Awaitable[str | None]]  # url → problem or None


async def probe_webhook_url(url: str) -> str | None:
    """Is ingress serving this webhook URL? A GET there answers 200 without publishing anything."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response,
        ):
            if response.status == 200:
                return None
            return f"ingress answered {response.status} on the webhook URL"
    except (aiohttp.ClientError, TimeoutError):
        return "the webhook URL did not answer: is ingress running at PUBLIC_BASE_URL?"


class ActivationChecks:
    def __init__(
        self, context: Context, *, probe_webhook: WebhookProbe | None = None, omnidesk_timeout_s: float = 5.0
    ) -> None:
        self._ctx = context
        self._probe_webhook = probe_webhook or probe_webhook_url
        self._omnidesk_timeout_s = omnidesk_timeout_s

    async def run(self, channel: Channel) -> list[Check]:
        """All four, in order; the channel may be active exactly when every one passed."""
        checks, _ = await self.run_finding_label(channel)
        return checks

    async def run_finding_label(self, channel: Channel) -> tuple[list[Check], int | None]:
        """The checks, and the id of the bot label when it was found by its title."""
        omnidesk, found_label = await self.check_omnidesk_and_label(channel)
        checks = [
            await self.check_agent(channel),
            omnidesk,
            await self.check_webhook(channel),
            await self.check_unique(channel),
        ]
        return checks, found_label

    async def check_agent(self, channel: Channel) -> Check:
        summary = await self._ctx.agents.summary(channel.agent)
        if summary is None:
            return Check(name="agent", passed=False, detail=f"agent {channel.agent} does not exist")
        if summary.published_version is None:
            return Check(name="agent", passed=False, detail=f"agent {channel.agent} has no published version")
        return Check(
            name="agent",
            passed=True,
            detail=f"agent {channel.agent} version {summary.published_version} is published",
        )

    async def check_omnidesk(self, channel: Channel) -> Check:
        check, _ = await self.check_omnidesk_and_label(channel)
        return check

    async def check_omnidesk_and_label(self, channel: Channel) -> tuple[Check, int | None]:
        """The credentials answer and the staff member exists; and which label marks chats on the
        bot: the channel's id, else the label with its title (default «На боте», as in the seed).
        A missing label does not fail the check (the bot answers without it; only a transfer
        cannot remove it), but the detail says so."""
        account = Account(channel.domain, channel.email, self._ctx.secrets.decrypt(channel.api_key_enc))
        timeout = self._omnidesk_timeout_s
        found: int | None = None
        async with aiohttp.ClientSession() as session:
            client = OmnideskClient(session, AccountThrottle(max_wait_in_place_s=0), timeout_s=timeout)
            try:
                staff_id = await client.staff_id(account)
            except OmnibotError as exc:
                failed = Check(name="omnidesk", passed=False, detail=omnidesk_problem(exc, channel, timeout))
                return failed, None
            detail = f"Omnidesk answers; staff {channel.email} is id {staff_id}"
            title = channel.bot_label_title or DEFAULT_BOT_LABEL
            if channel.bot_label_id is not None:
                detail += f"; bot label id {channel.bot_label_id}"
            else:
                try:
                    found = await client.label_id(account, title)
                except OmnibotError:
                    found = None
                if found is None:
                    detail += f"; no label titled «{title}» found: set the channel's bot label for transfers"
                else:
                    detail += f"; bot label «{title}» is id {found}"
        return Check(name="omnidesk", passed=True, detail=detail), found

    async def check_webhook(self, channel: Channel) -> Check:
        problem = await self._probe_webhook(self._ctx.webhook_url(channel))
        return Check(
            name="webhook", passed=problem is None, detail=problem or "ingress accepts events on the URL"
        )

    async def check_unique(self, channel: Channel) -> Check:
        others = [
            c.id
            for c in await self._ctx.channels.active_with(channel.domain, channel.email)
            if c.id != channel.id
        ]
        return Check(
            name="unique",
            passed=not others,
            detail=f"channel {others[0]} already uses this domain and e-mail"
            if others
            else "no other active channel uses this domain and e-mail",
        )


def omnidesk_problem(exc: OmnibotError, channel: Channel, timeout: float) -> str:
    """The failed Omnidesk check in words a person can act on (never with the API key)."""
    match exc:
        case OmnideskUnreachable():
            return f"cannot connect to {channel.domain}: check the domain"
        case OmnideskRateLimited():
            return f"{channel.domain} is rate limiting this API key; try again in a minute"
        case OmnideskTimeout():
            return f"{channel.domain} did not answer in {timeout:g} s"
        case OmnideskUnauthorized():
            return (
                f"Omnidesk refused the credentials: staff {channel.email} not found or the API key is "
                "wrong (401)"
            )
        case StaffInactive() | OmnideskRefused(code="staff_not_active"):
            return f"staff {channel.email} is not active in Omnidesk"
        case StaffNotFound():
            return f"staff {channel.email} not found in Omnidesk"
        case OmnideskNotFound():
            return f"{channel.domain} is not an Omnidesk account (the API answered 404): check the domain"
        case TransientError():
            return f"{channel.domain} is not answering properly ({exc}); try again later"
    # Other refusals: the client's message names the status and Omnidesk's error code only, never
    # the answer's body.
    return str(exc)
