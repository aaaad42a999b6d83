"""One customer message → one turn: load the chat, run the engine, commit state and outbox, publish.

Exactly-once, in the face of redelivery and crashes:
- the chat document remembers the ids of recently processed inbound messages, so a redelivered
  message produces no second turn;
- a turn's outbound actions are committed in the same document write as the new state (the
  outbox, `pending`), then published, then cleared. A crash between commit and publish leaves
  them pending, and whoever touches the chat next publishes them again; egress drops what it
  already performed (per-chat sequence numbers), so republishing is always safe;
- commits are conditional on the version read, so two workers never both advance one chat.
An external request splits a turn: what the agent said before it is committed and published at
once (the customer sees "one moment..." before a slow call), and the turn resumes with the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from omnibot.dialog import engine
from omnibot.dialog.catalog import AgentCatalog
from omnibot.dialog.outbox import build_actions, transcript_lines, transfer_summary
from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.channels import Channel
from omnibot.shared.chats import RECENT_INBOUND_KEPT, ChatRecord, ChatStore
from omnibot.shared.crypto import SecretBox
from omnibot.shared.errors import PermanentError, TransientError
from omnibot.shared.logs import bind
from omnibot.shared.messages import InboundMessage, OutboundAction, chat_key, encoder, outbound_decoder

log = logging.getLogger(__name__)

Publish = Callable[[OutboundAction], Awaitable[None]]
Fetch = Callable[[engine.CallExternal], Awaitable[engine.ExternalResult]]

MAX_COMMIT_CONFLICTS = 5
MAX_EXTERNAL_CALLS_PER_TURN = 10


class TurnRunner:
    def __init__(
        self,
        *,
        chats: ChatStore,
        agents: AgentCatalog,
        channels: ChannelDirectory,
        secrets: SecretBox | None,
        publish: Publish,
        fetch: Fetch,
        clock: Callable[[], float] = time.time,
        max_slots_per_turn: int = 50,
    ) -> None:
        self._chats = chats
        self._agents = agents
        self._channels = channels
        self._secrets = secrets
        self._publish = publish
        self._fetch = fetch
        self._clock = clock
        self._max_slots = max_slots_per_turn

    async def handle(self, inbound: InboundMessage) -> None:
        channel = await self._channels.get(inbound.channel_id)
        if channel is None:
            raise PermanentError(f"channel {inbound.channel_id} does not exist")
        key = chat_key(inbound.channel_id, inbound.chat_id)
        with bind(channel_id=inbound.channel_id, chat_id=inbound.chat_id, event_id=inbound.event_id):
            for _ in range(MAX_COMMIT_CONFLICTS):
                record = await self._chats.load(key)
                if record is not None and record.pending:
                    await self._publish_pending(record)
                if record is not None and inbound.event_id in record.recent_inbound:
                    log.info("redelivered message: its turn is already done")
                    return
                if await self._turn(channel, record, inbound):
                    return
                log.info("chat changed while the turn ran; running it again on the new state")
            raise TransientError("the chat kept changing under concurrent writers")

    async def _turn(self, channel: Channel, record: ChatRecord | None, inbound: InboundMessage) -> bool:
        now = self._clock()
        if record is None:
            record = await self._new_chat(channel, inbound, now)
        expected = record.version
        record = _next_version(record)
        if record.owner == "operator":
            record.recent_inbound = _remember(record.recent_inbound, inbound.event_id)
            # A human owns the chat: keep the customer's words for the transcript, say nothing.
            if not await self._chats.commit(record, expected):
                return False
            await self._chats.append_transcript(
                transcript_lines(record.key, record.version, inbound.text, [], now)
            )
            log.info("chat is with an operator: no bot turn")
            return True

        agent = await self._agents.get(record.agent_name, record.agent_version)
        ctx = engine.TurnContext(
            runtime=self._runtime(channel, inbound, record), max_slots_per_turn=self._max_slots
        )
        state = msgspec.convert(record.state, engine.ChatState) if record.state else None
        events: list[engine.Event] = []
        customer_text: str | None = inbound.text
        if state is not None and state.waiting == "external" and state.pending_request_id:
            interrupted = engine.ExternalResult(
                request_id=state.pending_request_id, status=None, error="interrupted"
            )
            if record.turn_event == inbound.event_id:
                # This very message's turn was cut off mid-request (a crashed worker): make the
                # request again and carry on where the turn stopped.
                call = engine.pending_call(agent, state, _as_datetime(now), ctx)
                events.append(interrupted if call is None else await self._fetch(call))
                customer_text = None
            else:
                # A turn whose message is gone (dead-lettered) left the chat waiting: fail that
                # request so the agent's on_error path runs, then take the new message.
                events.append(interrupted)
        if customer_text is not None:
            events.append(engine.CustomerMessage(text=inbound.text))
        first_commit = True

        for _ in range(MAX_EXTERNAL_CALLS_PER_TURN + 1):
            effects: list[engine.Effect] = []
            for event in events:
                state, produced = engine.step(agent, state, event, _as_datetime(now), ctx)
                effects.extend(produced)
            assert state is not None  # step always returns a state
            call = next((e for e in effects if isinstance(e, engine.CallExternal)), None)
            actions = await self._actions(channel, record, state, effects, now)
            record.state = msgspec.to_builtins(state)
            record.out_seq += len(actions)
            record.pending = [msgspec.to_builtins(a) for a in actions]
            if any(isinstance(e, engine.Transfer) for e in effects):
                record.owner = "operator"
            if call is None:
                record.recent_inbound = _remember(record.recent_inbound, inbound.event_id)
                record.turn_event = ""
            else:
                record.turn_event = inbound.event_id
            if not await self._chats.commit(record, expected):
                if first_commit:
                    return False
                raise TransientError("the chat changed during an external request")
            first_commit = False
            await self._publish_all(actions)
            await self._chats.clear_pending(record.key, record.version)
            await self._chats.append_transcript(
                transcript_lines(record.key, record.version, customer_text, actions, now)
            )
            if call is None:
                return True
            result = await self._fetch(call)
            now = self._clock()
            expected = record.version
            record = _next_version(record)
            events = [result]
            customer_text = None
        raise PermanentError("the turn made too many external requests")

    async def _new_chat(self, channel: Channel, inbound: InboundMessage, now: float) -> ChatRecord:
        version = await self._agents.published_version(channel.agent)
        if version is None:
            raise PermanentError(f"agent {channel.agent} has no published version")
        return ChatRecord(
            key=chat_key(inbound.channel_id, inbound.chat_id),
            channel_id=inbound.channel_id,
            chat_id=inbound.chat_id,
            agent_name=channel.agent,
            agent_version=version,
            created_at=now,
        )

    async def _actions(
        self,
        channel: Channel,
        record: ChatRecord,
        state: engine.ChatState,
        effects: list[engine.Effect],
        now: float,
    ) -> list[OutboundAction]:
        transfer = next((e for e in effects if isinstance(e, engine.Transfer)), None)
        summary = ""
        if transfer is not None:
            recent = await self._chats.transcript(record.key, limit=20)
            summary = transfer_summary(recent, state.variables, _reason(transfer))
        return build_actions(
            effects,
            channel_id=record.channel_id,
            chat_id=record.chat_id,
            first_seq=record.out_seq + 1,
            now=now,
            summary=summary,
            label_id=_label_id(state.variables.get("bot_label_id"), channel.bot_label_id),
        )

    async def _publish_all(self, actions: list[OutboundAction]) -> None:
        for action in actions:
            await self._publish(action)

    async def _publish_pending(self, record: ChatRecord) -> None:
        # Committed by a turn that may have died before publishing: publish again, marked so.
        actions = [outbound_decoder.decode(encoder.encode(p)) for p in record.pending]
        log.warning("republishing %d outbound actions of an interrupted turn", len(actions))
        await self._publish_all([msgspec.structs.replace(a, maybe_duplicate=True) for a in actions])
        await self._chats.clear_pending(record.key, record.version)

    def _runtime(self, channel: Channel, inbound: InboundMessage, record: ChatRecord) -> dict[str, Any]:
        # Rebuilt every turn and never persisted: it holds the channel's credentials.
        api_key = self._secrets.decrypt(channel.api_key_enc) if self._secrets is not None else ""
        visitor = inbound.visitor
        return {
            "chat_id": inbound.chat_id,
            "channel_id": inbound.channel_id,
            "agent_name": record.agent_name,
            "channel_webhook_url": channel.domain,
            "channel_webhook_token": f"{channel.email}:{api_key}",
            "channel_visitor_id": visitor.id,
            "channel_visitor_email": visitor.email,
            "channel_visitor_name": visitor.name,
            "channel_visitor_phone": visitor.phone,
            "channel_visitor_login": visitor.login,
        }


def _next_version(record: ChatRecord) -> ChatRecord:
    return msgspec.structs.replace(record, version=record.version + 1, pending=[])


def _remember(recent: list[str], event_id: str) -> list[str]:
    return [*recent, event_id][-RECENT_INBOUND_KEPT:]


def _as_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _reason(transfer: engine.Transfer) -> str:
    return {"slot": "the agent transferred it", "error": "the agent failed", "loop": "the agent looped"}.get(
        transfer.reason, transfer.reason
    ) + (f": {transfer.detail}" if transfer.detail else "")


def _label_id(from_agent: object, from_channel: int | None) -> int | None:
    if isinstance(from_agent, int) and not isinstance(from_agent, bool) and from_agent > 0:
        return from_agent
    if isinstance(from_agent, str) and from_agent.strip().isdigit() and int(from_agent) > 0:
        return int(from_agent)
    return from_channel
