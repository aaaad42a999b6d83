"""Everything an operator does to omnibot, in one place behind the CLI and the admin HTTP API.

Operations return plain data (JSON-ready dicts built from the Structs in `schemas`) and raise
`Refused` with every problem listed when the request cannot be carried out; nothing is saved then.
API keys are returned masked only, and no message here ever contains one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec
from aio_pika.abc import AbstractRobustConnection
from msgspec import UNSET
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from omnibot.admin.broker import BrokerLink
from omnibot.admin.schemas import (
    DEFAULT_PAGE,
    MAX_PAGE,
    AgentDeleted,
    AgentImported,
    AgentPublished,
    AgentValid,
    AgentVersionView,
    AgentView,
    ChannelChanges,
    ChannelDeleted,
    ChannelView,
    ChatSummary,
    ChatView,
    Check,
    DeadLetterView,
    Page,
    ReplayResult,
    SecretsRotated,
    TranscriptEntry,
)
from omnibot.admin.store import MongoAdminStore
from omnibot.admin.validation import (
    api_key_problem,
    email_problem,
    label_title_problem,
    normalise_domain,
    page_problems,
    positive_problem,
    title_problem,
    transfer_status_problem,
)
from omnibot.dialog.agent import AgentInvalid, dump_agent, load_agent
from omnibot.dialog.outbox import transfer_summary
from omnibot.shared import amqp
from omnibot.shared.agents import MongoAgentStore
from omnibot.shared.channels import Channel, MongoChannelStore
from omnibot.shared.chats import ChatRecord, MongoChatStore, TranscriptLine
from omnibot.shared.crypto import SecretBox, fingerprint, mask, new_webhook_secret
from omnibot.shared.deadletters import BOTH, DeadLetter, StageName, list_dead, replay_dead
from omnibot.shared.errors import OmnibotError, PermanentError, TransientError
from omnibot.shared.messages import TransferToOperator, chat_key, encoder, outbound_decoder
from omnibot.shared.mongo import Document
from omnibot.shared.omnidesk import Account, OmnideskClient
from omnibot.shared.ratelimit import AccountThrottle
from omnibot.shared.settings import Settings

__all__ = ["Check", "Management", "Refused", "WebhookProbe", "probe_webhook_url"]

log = logging.getLogger(__name__)

MAX_CHAT_CONFLICTS = 5
DEFAULT_BOT_LABEL = "На боте"  # the seed's label for chats on the bot
TRANSCRIPT_LINES = 200


class Refused(OmnibotError):
    """The operation was refused; `problems` says every reason, `details` carries data (checks)."""

    def __init__(self, code: str, problems: list[str], *, details: dict[str, Any] | None = None) -> None:
        super().__init__("; ".join(problems))
        self.code = code
        self.problems = problems
        self.details = details


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
        broker: BrokerLink | None = None,
    ) -> None:
        self._agents = MongoAgentStore(db)
        self._channels = MongoChannelStore(db)
        self._chats = MongoChatStore(db)
        self._store = MongoAdminStore(db)
        self._secrets = secrets
        self._settings = settings
        self._probe_webhook = probe_webhook or probe_webhook_url
        self._omnidesk_timeout_s = omnidesk_timeout_s
        self._broker = broker

    # --- agents ---------------------------------------------------------------------------

    async def import_agent(self, raw: bytes | str, *, publish: bool = False) -> dict[str, Any]:
        agent, warnings = _load(raw)
        body = msgspec.json.decode(dump_agent(agent))
        await self._store.continue_numbering(agent.name)
        version = await self._agents.add_version(agent.name, body)
        if publish:
            await self._agents.publish(agent.name, version.version)
        return _data(
            AgentImported(
                name=agent.name,
                version=version.version,
                published=publish,
                warnings=[_problem_text(w) for w in warnings],
            )
        )

    async def validate_agent(self, raw: bytes | str) -> dict[str, Any]:
        """What import would say, without importing."""
        agent, warnings = _load(raw)
        return _data(AgentValid(name=agent.name, valid=True, warnings=[_problem_text(w) for w in warnings]))

    async def publish_agent(self, name: str, version: int | None = None) -> dict[str, Any]:
        published = await self._agents.publish(name, version)
        if published is None:
            what = f"agent {name}" + (f" version {version}" if version is not None else "")
            raise Refused("not_found", [f"{what} does not exist"])
        return _data(AgentPublished(name=name, published_version=published))

    async def export_agent(self, name: str, version: int | None = None) -> bytes:
        summary = await self._agents.summary(name)
        if summary is None:
            raise Refused("not_found", [f"agent {name} does not exist"])
        stored = await self._agents.get_version(name, version or summary.latest_version)
        if stored is None:
            raise Refused("not_found", [f"agent {name} version {version} does not exist"])
        agent, _ = load_agent(stored.body)
        return dump_agent(agent)

    async def list_agents(self, *, limit: int = DEFAULT_PAGE, offset: int = 0) -> dict[str, Any]:
        _check_page(limit, offset)
        summaries = await self._agents.all()
        views = [
            AgentView(name=s.name, latest_version=s.latest_version, published_version=s.published_version)
            for s in summaries
        ]
        return _page(views[offset : offset + limit], len(views), limit, offset)

    async def show_agent(self, name: str) -> dict[str, Any]:
        summary = await self._agents.summary(name)
        if summary is None:
            raise Refused("not_found", [f"agent {name} does not exist"])
        return _data(
            AgentView(
                name=name, latest_version=summary.latest_version, published_version=summary.published_version
            )
        )

    async def list_agent_versions(
        self, name: str, *, limit: int = DEFAULT_PAGE, offset: int = 0
    ) -> dict[str, Any]:
        _check_page(limit, offset)
        summary = await self._agents.summary(name)
        if summary is None:
            raise Refused("not_found", [f"agent {name} does not exist"])
        rows, total = await self._store.agent_versions(name, limit=limit, offset=offset)
        views = [
            AgentVersionView(
                name=name,
                version=row.version,
                published=row.version == summary.published_version,
                imported_at=iso_time(row.imported_at),
                slots=row.slots,
            )
            for row in rows
        ]
        return _page(views, total, limit, offset)

    async def delete_agent(self, name: str) -> dict[str, Any]:
        summary = await self._agents.summary(name)
        if summary is None:
            raise Refused("not_found", [f"agent {name} does not exist"])
        users = [c for c in await self._channels.all() if c.agent == name]
        if users:
            raise Refused(
                "agent_in_use",
                [
                    f"channel {c.id} ({c.title}) uses agent {name} as its default agent: "
                    f"give it another one first (omnibot channel update {c.id} --agent NAME)"
                    for c in users
                ],
            )
        versions = await self._store.delete_agent(name, summary.latest_version)
        return _data(AgentDeleted(name=name, deleted=True, versions=versions))

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
        bot_label_title: str = "",
        transfer_status: str = "",
        transfer_group_id: int | None = None,
        reserved: tuple[int, str] | None = None,
    ) -> dict[str, Any]:
        """`reserved`: the (id, webhook secret) of `reserve_channel`, whose URL was shown already."""
        normalised, domain_problem = normalise_domain(domain, allow_http=self._settings.omnidesk_allow_http)
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
            api_key_enc=self._secrets.encrypt(api_key.strip()),
            webhook_secret_enc=self._secrets.encrypt(secret),
            webhook_secret_hash=fingerprint(secret),
            agent=agent,
            bot_label_id=bot_label_id,
            bot_label_title=bot_label_title.strip(),
            transfer_status=transfer_status,
            transfer_group_id=transfer_group_id,
            created_at=now,
            updated_at=now,
        )
        try:
            await self._channels.insert(channel)
        except DuplicateKeyError:
            raise Refused("conflict", [f"channel {channel_id} exists already (created twice?)"]) from None
        if activate:
            return await self.activate_channel(channel.id)
        return self._view(channel)

    async def reserve_channel(self) -> tuple[int, str]:
        """A channel id and webhook secret for a channel about to be created (nothing is stored:
        an unused reservation leaves a gap in the id numbering only)."""
        return await self._channels.next_id(), new_webhook_secret()

    async def activate_channel(self, channel_id: int) -> dict[str, Any]:
        """Runs the four checks; the channel is active afterwards exactly when all passed."""
        channel = await self._require_channel(channel_id)
        checks, found_label = await self._run_checks(channel)
        active = all(c.passed for c in checks)
        fields: dict[str, Any] = {"active": active}
        if found_label is not None and channel.bot_label_id is None:
            fields["bot_label_id"] = found_label  # what transfers remove, from now on
        updated = await self._channels.update(channel_id, fields)
        if updated is None:
            raise Refused("not_found", [f"channel {channel_id} does not exist"])
        return self._view(updated, checks)

    async def deactivate_channel(self, channel_id: int) -> dict[str, Any]:
        await self._require_channel(channel_id)
        updated = await self._channels.update(channel_id, {"active": False})
        if updated is None:
            raise Refused("not_found", [f"channel {channel_id} does not exist"])
        return self._view(updated)

    async def update_channel(self, channel_id: int, changes: ChannelChanges) -> dict[str, Any]:
        """Change the given fields. For an active channel, a new domain, e-mail, API key or agent
        must pass the activation checks first; if one fails nothing changes and the channel stays
        active with its old settings (refused with `checks_failed`).
        """
        channel = await self._require_channel(channel_id)
        problems: list[str] = []
        fields: dict[str, Any] = {}
        credentials_changed = False
        if changes.title is not UNSET:
            _collect(problems, title_problem(changes.title))
            fields["title"] = changes.title.strip()
        if changes.domain is not UNSET:
            normalised, problem = normalise_domain(
                changes.domain, allow_http=self._settings.omnidesk_allow_http
            )
            _collect(problems, problem)
            fields["domain"] = normalised
        if changes.email is not UNSET:
            _collect(problems, email_problem(changes.email))
            fields["email"] = changes.email.strip()
        new_api_key: str | None = None
        if changes.api_key is not UNSET:
            _collect(problems, api_key_problem(changes.api_key))
            new_api_key = changes.api_key.strip()
            credentials_changed = new_api_key != self._secrets.decrypt(channel.api_key_enc)
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
        if not fields and new_api_key is None and not problems:
            problems.append("nothing to change: give at least one field")
        if problems:
            raise Refused("invalid", problems)
        if new_api_key is not None:
            fields["api_key_enc"] = self._secrets.encrypt(new_api_key)
        candidate = msgspec.structs.replace(channel, **fields)
        checks: list[Check] | None = None
        if channel.active and (
            credentials_changed
            or candidate.domain != channel.domain
            or candidate.email != channel.email
            or candidate.agent != channel.agent
        ):
            checks = await self.activation_checks(candidate)
            failed = [c for c in checks if not c.passed]
            if failed:
                raise Refused(
                    "checks_failed",
                    [f"{c.name}: {c.detail}" for c in failed],
                    details={"checks": [msgspec.to_builtins(c) for c in checks]},
                )
        updated = await self._channels.update(channel_id, fields)
        if updated is None:
            raise Refused("not_found", [f"channel {channel_id} does not exist"])
        return self._view(updated, checks)

    async def rotate_webhook_secret(self, channel_id: int) -> dict[str, Any]:
        """A new Chatbot webhook URL; the old one stops working (paste the new one into the rules)."""
        await self._require_channel(channel_id)
        secret = new_webhook_secret()
        updated = await self._channels.update(
            channel_id,
            {"webhook_secret_enc": self._secrets.encrypt(secret), "webhook_secret_hash": fingerprint(secret)},
        )
        if updated is None:
            raise Refused("not_found", [f"channel {channel_id} does not exist"])
        return self._view(updated)

    async def delete_channel(self, channel_id: int) -> dict[str, Any]:
        """The channel goes; its webhook answers 404 from then on. Its chats stay, for the record."""
        if not await self._channels.delete(channel_id):
            raise Refused("not_found", [f"channel {channel_id} does not exist"])
        return _data(ChannelDeleted(id=channel_id, deleted=True))

    async def list_channels(self, *, limit: int = DEFAULT_PAGE, offset: int = 0) -> dict[str, Any]:
        _check_page(limit, offset)
        channels = await self._channels.all()
        views = [self._channel_view(c) for c in channels[offset : offset + limit]]
        return _page(views, len(channels), limit, offset)

    async def show_channel(self, channel_id: int) -> dict[str, Any]:
        return self._view(await self._require_channel(channel_id))

    async def activation_checks(self, channel: Channel) -> list[Check]:
        """The four checks of product.md, each with a reason a person can act on."""
        checks, _ = await self._run_checks(channel)
        return checks

    async def _run_checks(self, channel: Channel) -> tuple[list[Check], int | None]:
        """The checks, and the bot label's id when it was found by its title."""
        omnidesk, found_label = await self._check_omnidesk(channel)
        checks = [await self._check_agent(channel), omnidesk]
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
        return checks, found_label

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

    async def _check_omnidesk(self, channel: Channel) -> tuple[Check, int | None]:
        """Omnidesk answers, the staff member exists; and which label marks chats on the bot."""
        account = Account(channel.domain, channel.email, self._secrets.decrypt(channel.api_key_enc))
        timeout = self._omnidesk_timeout_s
        async with aiohttp.ClientSession() as session:
            client = OmnideskClient(session, AccountThrottle(max_wait_in_place_s=0), timeout_s=timeout)
            try:
                staff_id = await client.staff_id(account)
            except OmnibotError as exc:
                failed = Check(name="omnidesk", passed=False, detail=_omnidesk_problem(exc, channel, timeout))
                return failed, None
            detail = f"Omnidesk answers; staff {channel.email} is id {staff_id}"
            if channel.bot_label_id is not None:
                return Check(
                    name="omnidesk", passed=True, detail=f"{detail}; bot label id {channel.bot_label_id}"
                ), None
            title = channel.bot_label_title or DEFAULT_BOT_LABEL
            try:
                found: int | None = await client.label_id(account, title)
            except OmnibotError:
                found = None
        if found is None:
            # Not a failed check: the bot answers without it; only transfers cannot remove the label.
            detail += f"; no label titled «{title}» found: set the channel's bot label for transfers"
        else:
            detail += f"; bot label «{title}» is id {found}"
        return Check(name="omnidesk", passed=True, detail=detail), found

    async def _agent_problems(self, agent: str) -> list[str]:
        if not agent.strip():
            return ["agent: must not be empty"]
        if await self._agents.summary(agent) is None:
            return [f"agent: {agent} does not exist (import it first)"]
        return []

    async def _require_channel(self, channel_id: int) -> Channel:
        channel = await self._channels.get(channel_id)
        if channel is None:
            raise Refused("not_found", [f"channel {channel_id} does not exist"])
        return channel

    def webhook_url(self, channel: Channel) -> str:
        return self.webhook_url_for(channel.id, self._secrets.decrypt(channel.webhook_secret_enc))

    def webhook_url_for(self, channel_id: int, secret: str) -> str:
        return f"{self._settings.public_base_url.rstrip('/')}/webhooks/omnidesk/{channel_id}/{secret}"

    def _channel_view(self, channel: Channel, checks: Sequence[Check] | None = None) -> ChannelView:
        return ChannelView(
            id=channel.id,
            title=channel.title,
            domain=channel.domain,
            email=channel.email,
            api_key=mask(self._secrets.decrypt(channel.api_key_enc)),
            agent=channel.agent,
            active=channel.active,
            webhook_url=self.webhook_url(channel),
            bot_label_id=channel.bot_label_id,
            bot_label_title=channel.bot_label_title,
            transfer_status=channel.transfer_status or None,
            transfer_group_id=channel.transfer_group_id,
            created_at=iso_time(channel.created_at),
            updated_at=iso_time(channel.updated_at),
            checks=list(checks) if checks is not None else UNSET,
        )

    def _view(self, channel: Channel, checks: Sequence[Check] | None = None) -> dict[str, Any]:
        return _data(self._channel_view(channel, checks))

    # --- chats ----------------------------------------------------------------------------

    async def show_chat(
        self, channel_id: int, chat_id: str, *, transcript: int = TRANSCRIPT_LINES
    ) -> dict[str, Any]:
        if not 0 <= transcript <= 10_000:
            raise Refused("invalid", ["transcript: must be between 0 and 10000 lines"])
        record = await self._require_chat(channel_id, chat_id)
        lines = await self._chats.transcript(record.key, limit=transcript) if transcript else []
        return _data(_chat_view(record, lines))

    async def list_chats(
        self,
        channel_id: int,
        *,
        owner: str | None = None,
        updated_since: float | None = None,
        limit: int = DEFAULT_PAGE,
        offset: int = 0,
    ) -> dict[str, Any]:
        problems = page_problems(limit, offset, max_limit=MAX_PAGE)
        if owner not in (None, "bot", "operator"):
            problems.append("owner: must be bot or operator")
        if problems:
            raise Refused("invalid", problems)
        await self._require_channel(channel_id)
        records, total = await self._store.chats(
            channel_id, owner=owner, updated_since=updated_since, limit=limit, offset=offset
        )
        return _page([_chat_summary(r) for r in records], total, limit, offset)

    async def transfer_chat(self, channel_id: int, chat_id: str) -> dict[str, Any]:
        """Hand the chat to a human by hand, as the agent's transfer slot does.

        A transfer action goes through the chat's outbox to egress, which leaves the operator a
        note, removes the bot label and sets the channel's transfer status and group; the chat is
        the operator's at once, so the bot says nothing more. Without the label change, dialog
        would see the bot label still on the case and take the chat straight back.
        """
        channel = await self._require_channel(channel_id)
        publisher = await self._outbound_publisher()
        try:
            for _ in range(MAX_CHAT_CONFLICTS):
                record = await self._require_chat(channel_id, chat_id)
                if record.owner == "operator":
                    return await self.show_chat(channel_id, record.chat_id)
                recent = await self._chats.transcript(record.key, limit=20)
                variables = dict((record.state or {}).get("variables") or {})
                seq = record.out_seq + 1
                action = TransferToOperator(
                    action_id=f"{record.channel_id}:{record.chat_id}:{seq}",
                    channel_id=record.channel_id,
                    chat_id=record.chat_id,
                    seq=seq,
                    created_at=time.time(),
                    summary=transfer_summary(recent, variables, "an administrator handed it over"),
                    label_id=None,  # egress uses the channel's bot label (its id, or found by title)
                )
                earlier = [outbound_decoder.decode(encoder.encode(p)) for p in record.pending]
                changed = msgspec.structs.replace(
                    record,
                    owner="operator",
                    version=record.version + 1,
                    out_seq=seq,
                    transfer_seq=seq,
                    bot_label_id=channel.bot_label_id,
                    pending=[*record.pending, msgspec.to_builtins(action)],
                )
                if not await self._chats.commit(changed, record.version):
                    continue  # dialog wrote first: read again
                await self._note(changed, "handed to an operator by hand")
                # Like dialog, publish what the outbox holds: earlier actions may have been published
                # already (egress drops duplicates by seq), then the transfer.
                actions = [msgspec.structs.replace(a, maybe_duplicate=True) for a in earlier] + [action]
                try:
                    for outbound in actions:
                        await publisher.publish(
                            chat_key(outbound.channel_id, outbound.chat_id),
                            encoder.encode(outbound),
                            message_id=outbound.action_id,
                        )
                except TransientError as exc:
                    # Committed: the outbox keeps the action, and dialog publishes it with the
                    # chat's next message. The bot is silent in the meantime either way.
                    log.warning("hand transfer of chat %s waits in its outbox: %s", changed.key, exc)
                else:
                    await self._chats.clear_pending(changed.key, changed.version)
                return await self.show_chat(channel_id, record.chat_id)
        finally:
            await publisher.close()
        raise Refused("conflict", ["the chat kept changing while it was being updated; try again"])

    async def resume_chat(self, channel_id: int, chat_id: str) -> dict[str, Any]:
        """Hand the chat back to the bot as a fresh session: the next message starts the agent.

        Nothing changes in Omnidesk: if the channel's rules only send cases carrying the bot label,
        put the label back on the case (which alone also hands the chat back to the bot).
        """
        for _ in range(MAX_CHAT_CONFLICTS):
            record = await self._require_chat(channel_id, chat_id)
            # out_seq stays (egress orders a chat's actions by it), and so does the outbox (pending).
            changed = msgspec.structs.replace(
                record, owner="bot", state={}, turn_event="", transfer_seq=0, version=record.version + 1
            )
            if await self._chats.commit(changed, record.version):
                await self._note(changed, "handed back to the bot by hand")
                return await self.show_chat(channel_id, record.chat_id)
        raise Refused("conflict", ["the chat kept changing while it was being updated; try again"])

    async def _note(self, record: ChatRecord, text: str) -> None:
        """A system line in the transcript, at the seq of the version this write took (dialog's
        turns number their lines from the versions after it)."""
        line = TranscriptLine(
            chat=record.key, seq=record.version * 1000, role="system", text=f"[{text}]", at=time.time()
        )
        await self._chats.append_transcript([line])

    async def _outbound_publisher(self) -> amqp.Publisher:
        broker = self._require_broker()
        connection = await self._connect(broker)
        try:
            return await amqp.Publisher.open(connection, broker.topology.outbound)
        except Exception as exc:  # noqa: BLE001 - aio-pika raises many kinds; the broker is the cause
            raise _broker_refusal(exc) from None

    async def _require_chat(self, channel_id: int, chat_id: str) -> ChatRecord:
        record = await self._chats.load(chat_key(channel_id, chat_id.strip()))
        if record is None:
            raise Refused("not_found", [f"chat {chat_id} of channel {channel_id} does not exist"])
        return record

    # --- dead letters ---------------------------------------------------------------------

    async def list_dead_letters(
        self, *, stage: StageName | None = None, limit: int = DEFAULT_PAGE, offset: int = 0
    ) -> dict[str, Any]:
        _check_page(limit, offset)
        broker = self._require_broker()
        connection = await self._connect(broker)
        try:
            found = await list_dead(connection, broker.topology, _stages(stage))
        except Exception as exc:  # noqa: BLE001 - aio-pika raises many kinds; the broker is the cause
            raise _broker_refusal(exc) from None
        views = [_dead_view(d) for d in found]
        return _page(views[offset : offset + limit], len(views), limit, offset)

    async def replay_dead_letters(
        self, ids: Sequence[str] | None, *, stage: StageName | None = None
    ) -> dict[str, Any]:
        """Re-drive the dead letters with these ids (None: every one) to their stage."""
        if ids is not None and not ids:
            raise Refused("invalid", ["give the ids of the dead letters to re-drive, or all"])
        broker = self._require_broker()
        connection = await self._connect(broker)
        wanted = None if ids is None else {i.strip() for i in ids}
        try:
            replayed = await replay_dead(connection, broker.topology, wanted, _stages(stage))
        except Exception as exc:  # noqa: BLE001 - aio-pika raises many kinds; the broker is the cause
            raise _broker_refusal(exc) from None
        done = {d.id for d in replayed}
        missing = sorted((wanted or set()) - done)
        return _data(ReplayResult(replayed=[_dead_view(d) for d in replayed], missing=missing))

    def _require_broker(self) -> BrokerLink:
        if self._broker is None:
            raise Refused("unavailable", ["this needs RabbitMQ, and no broker is configured here"])
        return self._broker

    async def _connect(self, broker: BrokerLink) -> AbstractRobustConnection:
        try:
            return await broker.connection()
        except TransientError as exc:
            raise Refused("unavailable", [str(exc)]) from None

    # --- secrets --------------------------------------------------------------------------

    async def rotate_secrets(self) -> dict[str, Any]:
        """Re-encrypt every channel's secrets under the first key of SECRET_KEY."""
        try:
            count = await self._store.rotate_channel_secrets(self._secrets)
        except TransientError as exc:
            raise Refused("conflict", [str(exc)]) from None
        return _data(SecretsRotated(channels=count))


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


def iso_time(ts: float) -> str | None:
    """Unix seconds as ISO 8601 UTC ("2026-05-01T10:00:00Z"); 0 (never recorded) is None."""
    if not ts:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _load(raw: bytes | str) -> tuple[Any, list[Any]]:
    try:
        return load_agent(raw)
    except AgentInvalid as exc:
        raise Refused("agent_invalid", [_problem_text(p) for p in exc.problems]) from None


def _omnidesk_problem(exc: OmnibotError, channel: Channel, timeout: float) -> str:
    """The failed Omnidesk check in words a person can act on (never with the API key)."""
    detail = str(exc)
    if isinstance(exc, TransientError):
        if "cannot connect" in detail:
            return f"cannot connect to {channel.domain}: check the domain"
        if "rate limit" in detail:
            return f"{channel.domain} is rate limiting this API key; try again in a minute"
        if "TimeoutError" in detail or "ServerTimeout" in detail:
            return f"{channel.domain} did not answer in {timeout:g} s"
        return f"{channel.domain} is not answering properly ({detail}); try again later"
    if isinstance(exc, PermanentError):
        if "(401)" in detail:
            return (
                f"Omnidesk refused the credentials: staff {channel.email} not found or the API key is "
                "wrong (401)"
            )
        if "staff_not_active" in detail:
            return f"staff {channel.email} is not active in Omnidesk"
        if " 404" in detail:
            return f"{channel.domain} is not an Omnidesk account (the API answered 404): check the domain"
    return detail


def _collect(problems: list[str], problem: str | None) -> None:
    if problem:
        problems.append(problem)


def _check_page(limit: int, offset: int) -> None:
    problems = page_problems(limit, offset, max_limit=MAX_PAGE)
    if problems:
        raise Refused("invalid", problems)


def _page(items: Sequence[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    following = offset + len(items)
    page: Page[Any] = Page(
        items=list(items),
        total=total,
        limit=limit,
        offset=offset,
        next_offset=following if following < total and items else None,
    )
    return _data(page)


def _data(value: msgspec.Struct) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(value)
    return data


def _chat_summary(record: ChatRecord) -> ChatSummary:
    state = record.state or {}
    return ChatSummary(
        channel_id=record.channel_id,
        chat_id=record.chat_id,
        owner=record.owner,
        agent=record.agent_name,
        agent_version=record.agent_version,
        slot=state.get("slot"),
        waiting=str(state.get("waiting") or "none"),
        last_error=record.last_error,
        created_at=iso_time(record.created_at),
        updated_at=iso_time(record.updated_at),
    )


def _chat_view(record: ChatRecord, lines: Sequence[TranscriptLine]) -> ChatView:
    return ChatView(
        **msgspec.structs.asdict(_chat_summary(record)),
        variables=dict((record.state or {}).get("variables") or {}),
        transcript=[TranscriptEntry(role=line.role, text=line.text, at=iso_time(line.at)) for line in lines],
    )


def _stages(stage: StageName | None) -> tuple[StageName, ...]:
    return BOTH if stage is None else (stage,)


def _dead_view(dead: DeadLetter) -> DeadLetterView:
    return DeadLetterView(
        id=dead.id,
        stage=dead.stage,
        channel_id=dead.channel_id,
        chat_id=dead.chat_id,
        kind=dead.kind,
        error=dead.error,
        attempts=dead.attempts,
        dead_at=iso_time(dead.dead_at),
        body=dead.body,
    )


def _broker_refusal(exc: BaseException) -> Refused:
    return Refused("unavailable", [f"RabbitMQ refused the operation ({type(exc).__name__})"])


def _problem_text(problem: Any) -> str:
    slot = getattr(problem, "slot", None)
    message = getattr(problem, "message", str(problem))
    return f"slot {slot}: {message}" if slot else str(message)
