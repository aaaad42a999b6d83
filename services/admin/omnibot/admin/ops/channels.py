"""Channels: create (and activate), activate, deactivate, change, rotate the webhook secret, delete,
list, show. Secrets are write-only: answers carry the API key masked and never encrypted."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType
from pymongo.errors import DuplicateKeyError

from omnibot.admin.ops.activation import ActivationChecks
from omnibot.admin.ops.context import Context, Refused, not_found
from omnibot.admin.ops.views import channel_view, check_page, page
from omnibot.admin.schemas import DEFAULT_PAGE, ChannelChanges, ChannelDeleted, ChannelView, Check, Page
from omnibot.admin.validation import (
    api_key_problem,
    email_problem,
    label_title_problem,
    llm_api_key_problem,
    llm_model_problem,
    normalise_domain,
    normalise_llm_base_url,
    positive_problem,
    title_problem,
    transfer_status_problem,
)
from omnibot.shared.channels import Channel
from omnibot.shared.crypto import SecretBox, fingerprint, new_webhook_secret


class ChannelOperations:
    def __init__(self, context: Context, checks: ActivationChecks) -> None:
        self._ctx = context
        self.checks = checks

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
        bot_label_title: str = "",
        transfer_status: str = "",
        transfer_group_id: int | None = None,
        llm_base_url: str = "",
        llm_model: str = "",
        llm_api_key: str = "",
        reserved: tuple[int, str] | None = None,
    ) -> ChannelView:
        """Saved inactive; with `activate` the checks run, and it is active if all of them pass.

        `reserved`: the (id, webhook secret) from `reserve_channel`, whose URL was shown already.
        """
        allow_http = self._ctx.settings.omnidesk_allow_http
        normalised, domain_problem = normalise_domain(domain, allow_http=allow_http)
        problems = [
            p
            for p in (
                title_problem(title),
                domain_problem,
                api_key_problem(api_key),
                email_problem(email),
                positive_problem("bot_label_id", bot_label_id),
                label_title_problem(bot_label_title),
                transfer_status_problem(transfer_status),
                positive_problem("transfer_group_id", transfer_group_id),
            )
            if p
        ]
        llm, llm_problems = llm_fields(self._ctx.secrets, llm_base_url, llm_model, llm_api_key)
        problems.extend(llm_problems)
        problems.extend(await self._agent_problems(agent))
        if problems or normalised is None:
            raise Refused("invalid", problems)
        channel_id, secret = reserved if reserved is not None else await self.reserve_channel()
        now = time.time()
        channel = Channel(
            id=channel_id,
            title=title.strip(),
            domain=normalised,
            email=email.strip(),
            api_key_enc=self._ctx.secrets.encrypt(api_key.strip()),
            webhook_secret_enc=self._ctx.secrets.encrypt(secret),
            webhook_secret_hash=fingerprint(secret),
            agent=agent,
            bot_label_id=bot_label_id,
            bot_label_title=bot_label_title.strip(),
            transfer_status=transfer_status,
            transfer_group_id=transfer_group_id,
            created_at=now,
            updated_at=now,
        )
        channel = msgspec.structs.replace(channel, **llm)
        try:
            await self._ctx.channels.insert(channel)
        except DuplicateKeyError:
            raise Refused("conflict", [f"channel {channel_id} exists already (created twice?)"]) from None
        if activate:
            return await self.activate_channel(channel.id)
        return self._view(channel)

    async def reserve_channel(self) -> tuple[int, str]:
        """An id and a webhook secret for a channel about to be created, so its URL can be shown
        first. Nothing is stored: an unused reservation leaves a gap in the numbering only."""
        return await self._ctx.channels.next_id(), new_webhook_secret()

    def webhook_url_for(self, channel_id: int, secret: str) -> str:
        return self._ctx.webhook_url_for(channel_id, secret)

    async def activate_channel(self, channel_id: int) -> ChannelView:
        """Runs the four checks; the channel is active afterwards exactly when all passed.

        A bot label found by its title is kept as the channel's bot label id (transfers remove it).
        """
        channel = await self._ctx.require_channel(channel_id)
        checks, found_label = await self.checks.run_finding_label(channel)
        fields: dict[str, Any] = {"active": all(c.passed for c in checks)}
        if found_label is not None and channel.bot_label_id is None:
            fields["bot_label_id"] = found_label
        updated = await self._update(channel_id, fields)
        return self._view(updated, checks)

    async def deactivate_channel(self, channel_id: int) -> ChannelView:
        await self._ctx.require_channel(channel_id)
        return self._view(await self._update(channel_id, {"active": False}))

    async def update_channel(self, channel_id: int, changes: ChannelChanges) -> ChannelView:
        """Change the given fields. For an active channel, a new domain, e-mail, API key or agent
        must pass the activation checks first; if one fails nothing changes and the channel stays
        active with its old settings (refused with `checks_failed`).
        """
        channel = await self._ctx.require_channel(channel_id)
        problems: list[str] = []
        fields: dict[str, Any] = {}
        credentials_changed = False
        if changes.title is not UNSET:
            _collect(problems, title_problem(changes.title))
            fields["title"] = changes.title.strip()
        if changes.domain is not UNSET:
            allow_http = self._ctx.settings.omnidesk_allow_http
            normalised, problem = normalise_domain(changes.domain, allow_http=allow_http)
            _collect(problems, problem)
            fields["domain"] = normalised
        if changes.email is not UNSET:
            _collect(problems, email_problem(changes.email))
            fields["email"] = changes.email.strip()
        new_api_key: str | None = None
        if changes.api_key is not UNSET:
            _collect(problems, api_key_problem(changes.api_key))
            new_api_key = changes.api_key.strip()
            credentials_changed = new_api_key != self._ctx.secrets.decrypt(channel.api_key_enc)
        if changes.agent is not UNSET:
            problems.extend(await self._agent_problems(changes.agent))
            fields["agent"] = changes.agent
        if changes.bot_label_id is not UNSET:
            _collect(problems, positive_problem("bot_label_id", changes.bot_label_id))
            fields["bot_label_id"] = changes.bot_label_id
        if changes.bot_label_title is not UNSET:
            _collect(problems, label_title_problem(changes.bot_label_title))
            fields["bot_label_title"] = changes.bot_label_title.strip()
        if changes.transfer_status is not UNSET:
            _collect(problems, transfer_status_problem(changes.transfer_status))
            fields["transfer_status"] = changes.transfer_status
        if changes.transfer_group_id is not UNSET:
            _collect(problems, positive_problem("transfer_group_id", changes.transfer_group_id))
            fields["transfer_group_id"] = changes.transfer_group_id
        llm, llm_problems = llm_fields(
            self._ctx.secrets, changes.llm_base_url, changes.llm_model, changes.llm_api_key
        )
        problems.extend(llm_problems)
        fields.update(llm)
        if not fields and new_api_key is None and not problems:
            problems.append("nothing to change: give at least one field")
        if problems:
            raise Refused("invalid", problems)
        if new_api_key is not None:
            fields["api_key_enc"] = self._ctx.secrets.encrypt(new_api_key)
        candidate = msgspec.structs.replace(channel, **fields)
        checks: list[Check] | None = None
        if channel.active and (
            credentials_changed
            or candidate.domain != channel.domain
            or candidate.email != channel.email
            or candidate.agent != channel.agent
        ):
            checks = await self.checks.run(candidate)
            failed = [c for c in checks if not c.passed]
            if failed:
                raise Refused(
                    "checks_failed",
                    [f"{c.name}: {c.detail}" for c in failed],
                    details={"checks": msgspec.to_builtins(checks)},
                )
        return self._view(await self._update(channel_id, fields), checks)

    async def rotate_webhook_secret(self, channel_id: int) -> ChannelView:
        """A new Chatbot webhook URL; the old one stops working (paste the new one into the rules)."""
        await self._ctx.require_channel(channel_id)
        secret = new_webhook_secret()
        encrypted = self._ctx.secrets.encrypt(secret)
        fields = {"webhook_secret_enc": encrypted, "webhook_secret_hash": fingerprint(secret)}
        return self._view(await self._update(channel_id, fields))

    async def delete_channel(self, channel_id: int) -> ChannelDeleted:
        """The channel goes; its webhook answers 404 from then on. Its chats stay, for the record."""
        if not await self._ctx.channels.delete(channel_id):
            raise not_found(f"channel {channel_id}")
        return ChannelDeleted(id=channel_id, deleted=True)

    async def list_channels(self, *, limit: int = DEFAULT_PAGE, offset: int = 0) -> Page[ChannelView]:
        check_page(limit, offset)
        channels = await self._ctx.channels.all()
        views = [self._view(c) for c in channels[offset : offset + limit]]
        return page(views, len(channels), limit, offset)

    async def show_channel(self, channel_id: int) -> ChannelView:
        return self._view(await self._ctx.require_channel(channel_id))

    async def _update(self, channel_id: int, fields: dict[str, Any]) -> Channel:
        updated = await self._ctx.channels.update(channel_id, fields)
        if updated is None:  # deleted meanwhile
            raise not_found(f"channel {channel_id}")
        return updated

    async def _agent_problems(self, agent: str) -> list[str]:
        if not agent.strip():
            return ["agent: must not be empty"]
        if await self._ctx.agents.summary(agent) is None:
            return [f"agent: {agent} does not exist (import it first)"]
        return []

    def _view(self, channel: Channel, checks: Sequence[Check] | None = None) -> ChannelView:
        return channel_view(
            channel,
            api_key=self._ctx.secrets.decrypt(channel.api_key_enc),
            webhook_url=self._ctx.webhook_url(channel),
            checks=checks,
        )


def llm_fields(
    secrets: SecretBox,
    base_url: str | UnsetType,
    model: str | UnsetType,
    api_key: str | UnsetType,
) -> tuple[dict[str, str], list[str]]:
    """The channel's own language model as stored fields (those given; "" clears one), and the
    problems. The key is stored encrypted, like the Omnidesk key, and never comes back out."""
    fields: dict[str, str] = {}
    problems: list[str] = []
    if base_url is not UNSET:
        fields["llm_base_url"], problem = normalise_llm_base_url(base_url)
        _collect(problems, problem)
    if model is not UNSET:
        _collect(problems, llm_model_problem(model))
        fields["llm_model"] = model.strip()
    if api_key is not UNSET:
        _collect(problems, llm_api_key_problem(api_key))
        key = api_key.strip()
        fields["llm_api_key_enc"] = secrets.encrypt(key) if key and not problems else ""
    return fields, problems


def _collect(problems: list[str], problem: str | None) -> None:
    if problem:
        problems.append(problem)
