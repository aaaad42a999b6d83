"""Everything an operator does to omnibot, in one place behind the CLI and the admin HTTP API.

Operations return plain data (JSON-ready dicts) and raise `Refused` with every problem listed when
the request cannot be carried out. API keys are returned masked only.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.admin.validation import api_key_problem, email_problem, normalise_domain, title_problem
from omnibot.dialog.agent import AgentInvalid, dump_agent, load_agent
from omnibot.shared.agents import MongoAgentStore
from omnibot.shared.channels import Channel, MongoChannelStore
from omnibot.shared.crypto import SecretBox, fingerprint, mask, new_webhook_secret
from omnibot.shared.errors import OmnibotError
from omnibot.shared.mongo import Document
from omnibot.shared.omnidesk import Account, OmnideskClient
from omnibot.shared.ratelimit import AccountThrottle
from omnibot.shared.settings import Settings


class Refused(OmnibotError):
    """The operation was refused; `problems` says every reason."""

    def __init__(self, code: str, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.code = code
        self.problems = problems


class Check(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    passed: bool
    detail: str


WebhookProbe = Callable[[str], Awaitable[str | None]]  # url → problem or None


class Management:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        secrets: SecretBox,
        settings: Settings,
        *,
        probe_webhook: WebhookProbe | None = None,
        omnidesk_timeout_s: float = 5.0,
    ) -> None:
        self._agents = MongoAgentStore(db)
        self._channels = MongoChannelStore(db)
        self._secrets = secrets
        self._settings = settings
        self._probe_webhook = probe_webhook or probe_webhook_url
        self._omnidesk_timeout_s = omnidesk_timeout_s

    # --- agents ---------------------------------------------------------------------------

    async def import_agent(self, raw: bytes | str, *, publish: bool = False) -> dict[str, Any]:
        try:
            agent, warnings = load_agent(raw)
        except AgentInvalid as exc:
            raise Refused("agent_invalid", [_problem_text(p) for p in exc.problems]) from None
        body = msgspec.json.decode(dump_agent(agent))
        version = await self._agents.add_version(agent.name, body)
        if publish:
            await self._agents.publish(agent.name, version.version)
        return {
            "name": agent.name,
            "version": version.version,
            "published": publish,
            "warnings": [_problem_text(w) for w in warnings],
        }

    async def publish_agent(self, name: str, version: int | None = None) -> dict[str, Any]:
        published = await self._agents.publish(name, version)
        if published is None:
            what = f"agent {name}" + (f" version {version}" if version is not None else "")
            raise Refused("not_found", [f"{what} does not exist"])
        return {"name": name, "published_version": published}

    async def export_agent(self, name: str, version: int | None = None) -> bytes:
        summary = await self._agents.summary(name)
        if summary is None:
            raise Refused("not_found", [f"agent {name} does not exist"])
        stored = await self._agents.get_version(name, version or summary.latest_version)
        if stored is None:
            raise Refused("not_found", [f"agent {name} version {version} does not exist"])
        agent, _ = load_agent(stored.body)
        return dump_agent(agent)

    async def list_agents(self) -> list[dict[str, Any]]:
        return [msgspec.to_builtins(s) for s in await self._agents.all()]

    # --- channels -------------------------------------------------------------------------

    async def create_channel(
        self,
        *,
        domain: str,
        api_key: str,
        email: str,
        agent: str,
        title: str = "New channel",
        activate: bool = False,
        bot_label_id: int | None = None,
        transfer_status: str = "",
        transfer_group_id: int | None = None,
    ) -> dict[str, Any]:
        normalised, domain_problem = normalise_domain(domain, allow_http=self._settings.omnidesk_allow_http)
        problems = [
            p
            for p in (domain_problem, email_problem(email), api_key_problem(api_key), title_problem(title))
            if p
        ]
        if await self._agents.summary(agent) is None:
            problems.append(f"agent: {agent} does not exist (import it first)")
        if bot_label_id is not None and bot_label_id <= 0:
            problems.append("bot_label_id: must be a positive label id")
        if transfer_status not in ("", "open", "waiting", "closed"):
            problems.append("transfer_status: must be open, waiting or closed")
        if problems or normalised is None:
            raise Refused("invalid", problems)
        secret = new_webhook_secret()
        now = time.time()
        channel = Channel(
            id=await self._channels.next_id(),
            title=title.strip(),
            domain=normalised,
            email=email.strip(),
            api_key_enc=self._secrets.encrypt(api_key.strip()),
            webhook_secret_enc=self._secrets.encrypt(secret),
            webhook_secret_hash=fingerprint(secret),
            agent=agent,
            bot_label_id=bot_label_id,
            transfer_status=transfer_status,
            transfer_group_id=transfer_group_id,
            created_at=now,
            updated_at=now,
        )
        await self._channels.insert(channel)
        if activate:
            return await self.activate_channel(channel.id)
        return self._view(channel)

    async def activate_channel(self, channel_id: int) -> dict[str, Any]:
        channel = await self._require_channel(channel_id)
        checks = await self.activation_checks(channel)
        active = all(c.passed for c in checks)
        updated = await self._channels.update(channel_id, {"active": active})
        assert updated is not None
        return {**self._view(updated), "checks": [msgspec.to_builtins(c) for c in checks]}

    async def deactivate_channel(self, channel_id: int) -> dict[str, Any]:
        await self._require_channel(channel_id)
        updated = await self._channels.update(channel_id, {"active": False})
        assert updated is not None
        return self._view(updated)

    async def list_channels(self) -> list[dict[str, Any]]:
        return [self._view(c) for c in await self._channels.all()]

    async def show_channel(self, channel_id: int) -> dict[str, Any]:
        return self._view(await self._require_channel(channel_id))

    async def activation_checks(self, channel: Channel) -> list[Check]:
        """The four checks of product.md, each with a reason a person can act on."""
        checks = [await self._check_agent(channel), await self._check_omnidesk(channel)]
        problem = await self._probe_webhook(self.webhook_url(channel))
        checks.append(
            Check(
                name="webhook", passed=problem is None, detail=problem or "ingress accepts events on the URL"
            )
        )
        others = [
            c.id
            for c in await self._channels.active_with(channel.domain, channel.email)
            if c.id != channel.id
        ]
        checks.append(
            Check(
                name="unique",
                passed=not others,
                detail=f"channel {others[0]} already uses this domain and e-mail"
                if others
                else "no other active channel uses this domain and e-mail",
            )
        )
        return checks

    async def _check_agent(self, channel: Channel) -> Check:
        summary = await self._agents.summary(channel.agent)
        if summary is None:
            return Check(name="agent", passed=False, detail=f"agent {channel.agent} does not exist")
        if summary.published_version is None:
            return Check(name="agent", passed=False, detail=f"agent {channel.agent} has no published version")
        return Check(
            name="agent",
            passed=True,
            detail=f"agent {channel.agent} version {summary.published_version} is published",
        )

    async def _check_omnidesk(self, channel: Channel) -> Check:
        account = Account(channel.domain, channel.email, self._secrets.decrypt(channel.api_key_enc))
        timeout = self._omnidesk_timeout_s
        async with aiohttp.ClientSession() as session:
            client = OmnideskClient(session, AccountThrottle(max_wait_in_place_s=0), timeout_s=timeout)
            try:
                staff_id = await client.staff_id(account)
            except OmnibotError as exc:
                detail = str(exc)
                if "cannot connect" in detail or "TimeoutError" in detail:
                    detail = f"{channel.domain} did not answer in {timeout:.0f} s"
                return Check(name="omnidesk", passed=False, detail=detail)
        return Check(
            name="omnidesk", passed=True, detail=f"Omnidesk answers; staff {channel.email} is id {staff_id}"
        )

    async def _require_channel(self, channel_id: int) -> Channel:
        channel = await self._channels.get(channel_id)
        if channel is None:
            raise Refused("not_found", [f"channel {channel_id} does not exist"])
        return channel

    def webhook_url(self, channel: Channel) -> str:
        secret = self._secrets.decrypt(channel.webhook_secret_enc)
        return f"{self._settings.public_base_url.rstrip('/')}/webhooks/omnidesk/{channel.id}/{secret}"

    def _view(self, channel: Channel) -> dict[str, Any]:
        return {
            "id": channel.id,
            "title": channel.title,
            "domain": channel.domain,
            "email": channel.email,
            "api_key": mask(self._secrets.decrypt(channel.api_key_enc)),
            "agent": channel.agent,
            "active": channel.active,
            "webhook_url": self.webhook_url(channel),
            "bot_label_id": channel.bot_label_id,
            "transfer_status": channel.transfer_status or None,
            "transfer_group_id": channel.transfer_group_id,
        }


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


def _problem_text(problem: Any) -> str:
    slot = getattr(problem, "slot", None)
    message = getattr(problem, "message", str(problem))
    return f"slot {slot}: {message}" if slot else str(message)
