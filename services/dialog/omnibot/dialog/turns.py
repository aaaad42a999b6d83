"""One webhook → the turns it calls for: load the chat, decide what is new, run the engine, commit.

Exactly-once, in the face of redelivery, echoes and crashes:
- a webhook is a prompt, not a message: what is new is decided by `_new_texts` (the customer
  messages Omnidesk has above the last one taken, or, in webhook mode, content not taken within
  the dedup window), so Omnidesk's duplicate deliveries and the webhooks that the bot's own replies
  and label changes trigger make no turn, while a customer repeating themselves does;
- the chat document remembers the ids of recently processed inbound messages, so a redelivered
  message produces no second turn;
- a turn's outbound actions are committed in the same document write as the new state (the
  outbox, `pending`), then published, then cleared. A crash between commit and publish leaves them
  pending, and whoever touches the chat next publishes them again; egress drops what it already
  performed (per-chat sequence numbers), so republishing is always safe;
- commits are conditional on the version read, so two workers never both advance one chat.
An external request splits a turn: what the agent said before it is committed and published at
once (the customer sees "one moment..." before a slow call), the turn resumes with the result,
and a worker that dies mid-request leaves the chat marked so the next one makes the request again.

Ownership: a transfer (the `transfer` slot, or the seed's way, an external request removing the
bot label from the case) hands the chat to a human and the bot falls silent. It is handed back when
the case carries the bot label again (Omnidesk's rules put it back): checked on each webhook of an
operator-owned chat, once egress has performed the transfer (until then the label is still there
because it has not been removed yet, not because it was put back).

What operators write reaches the transcript from the case's messages read back from Omnidesk (no
webhook carries it): with INBOUND_MODE=confirm on every webhook, from the read-back that finds the
customer's messages anyway; with INBOUND_MODE=webhook on the webhooks of a chat an operator has, or
had since the last read (one more Omnidesk call on each). The lines go in with the commit of that
webhook, which stages nothing for them: recording the operator's words never makes the bot speak.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import msgspec

from omnibot.agents import engine
from omnibot.agents.handoff import (
    MAX_EXTERNAL_CALLS_PER_TURN,
    label_id,
    reason_text,
    removed_bot_label,
    transfer_summary,
)
from omnibot.dialog.catalog import AgentCatalog
from omnibot.dialog.inbox import CustomerText, Readback
from omnibot.shared import metrics, telemetry
from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.channels import Channel
from omnibot.shared.chat_record import (
    OperatorMessage,
    Publish,
    build_actions,
    hand_back,
    hand_to_operator,
    next_version,
    publish_outbox,
    stage,
    take_operator_messages,
    transcript_lines,
)
from omnibot.shared.chats import RECENT_INBOUND_KEPT, ChatRecord, ChatStore
from omnibot.shared.crypto import SecretBox
from omnibot.shared.deliveries import DeliveryStore
from omnibot.shared.errors import PermanentError, TransientError
from omnibot.shared.logs import bind
from omnibot.shared.messages import ChatTimer, InboundMessage, OutboundAction, TransferToOperator, chat_key

log = logging.getLogger(__name__)

Fetch = Callable[[engine.CallExternal], Awaitable[engine.ExternalResult]]
# An `llm` slot's call to the chat's language model (the channel may name its own provider).
Complete = Callable[[engine.CallLLM, Channel], Awaitable[engine.LLMResult]]
# Sends a chat's inactivity timer on its way (through the inbound delay tiers).
ScheduleTimer = Callable[[ChatTimer], Awaitable[None]]

MAX_COMMIT_CONFLICTS = 5
FINGERPRINTS_KEPT = 20


class Inbox(Protocol):
    async def read_case(self, channel: Channel, chat_id: str, after_id: int | None) -> Readback: ...

    async def labels(self, channel: Channel, chat_id: str) -> set[int]: ...

    async def bot_label(self, channel: Channel) -> int | None: ...


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
        inbox: Inbox | None = None,
        deliveries: DeliveryStore | None = None,
        inbound_mode: Literal["confirm", "webhook"] = "webhook",
        dedup_window_s: float = 30.0,
        return_to_bot: Literal["restart", "resume"] = "restart",
        clock: Callable[[], float] = time.time,
        max_slots_per_turn: int = 50,
        complete: Complete | None = None,
        schedule_timer: ScheduleTimer | None = None,
    ) -> None:
        if inbound_mode == "confirm" and inbox is None:
            raise ValueError("inbound_mode 'confirm' needs an inbox to read Omnidesk with")
        self._chats = chats
        self._agents = agents
        self._channels = channels
        self._secrets = secrets
        self._publish = publish
        self._fetch = fetch
        self._inbox = inbox
        self._deliveries = deliveries
        self._inbound_mode = inbound_mode
        self._dedup_window_s = dedup_window_s
        self._return_to_bot = return_to_bot
        self._clock = clock
        self._max_slots = max_slots_per_turn
        self._complete = complete
        self._schedule_timer = schedule_timer

    async def handle(self, inbound: InboundMessage) -> None:
        started = time.perf_counter()
        outcome = "error"
        with telemetry.span(
            "omnibot.dialog",
            "dialog turn",
            attributes={"omnibot.channel_id": inbound.channel_id, "omnibot.chat_id": inbound.chat_id},
        ) as span:
            try:
                outcome = await self._handle(inbound)
            finally:
                metrics.record_turn(outcome, time.perf_counter() - started)
                telemetry.set_attributes(span, **{"omnibot.outcome": outcome})

    async def _handle(self, inbound: InboundMessage) -> Literal["done", "duplicate", "redelivered"]:
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
                    return "redelivered"
                if record is not None and record.turn_event == inbound.event_id:
                    await self._resume(channel, record, inbound)
                    continue  # then look again for what else this webhook brought
                outcome = await self._handle_once(channel, record, inbound)
                if outcome is not None:
                    return outcome
                log.info("chat changed while the turn ran; running it again on the new state")
            raise TransientError("the chat kept changing under concurrent writers")

    async def _handle_once(
        self, channel: Channel, record: ChatRecord | None, inbound: InboundMessage
    ) -> Literal["done", "duplicate"] | None:
        """What this webhook came to ("duplicate": nothing new in it); None: the chat changed."""
        now = self._clock()
        texts, read = await self._new_texts(channel, record, inbound, now)
        if record is None:
            record = await self._new_chat(channel, inbound, now)
        expected = record.version
        record = next_version(record)
        if texts and self._inbound_mode == "webhook":
            record.recent_fingerprints = _fingerprints(
                record.recent_fingerprints, inbound.fingerprint, now, self._dedup_window_s
            )

        handed_back = False
        if record.owner == "operator":
            if await self._handed_back(channel, record):
                log.info("the case carries the bot label again: the chat is back with the bot")
                hand_back(record, restart=self._return_to_bot == "restart")
                handed_back = True
            else:
                spoken = take_operator_messages(record, read)
                silent = await self._stay_silent(record, expected, inbound, texts, now, spoken)
                return "done" if silent else None
        spoken = take_operator_messages(record, read) if read else []
        if not texts:
            record.recent_inbound = _remember(record.recent_inbound, inbound.event_id)
            if not await self._chats.commit(record, expected):
                return None
            if handed_back:
                metrics.record_returned_to_bot()
            await self._chats.append_transcript(
                transcript_lines(record.key, record.version, [], [], now, operator=spoken)
            )
            log.info("no new customer message in this webhook (a repeat or an echo): no turn")
            return "duplicate"
        for index, item in enumerate(texts):
            committed = await self._play(
                channel,
                record,
                expected,
                inbound,
                item,
                now,
                last=index == len(texts) - 1,
                operator=spoken if index == 0 else [],
                handed_back=handed_back and index == 0,
            )
            if committed is None:
                if index == 0:
                    return None
                raise TransientError("the chat changed between two messages of one webhook")
            expected, record = committed.version, next_version(committed)
            if committed.owner == "operator" and index < len(texts) - 1:
                # Handed over mid-webhook: the rest of the customer's words are for the human.
                rest = texts[index + 1 :]
                return "done" if await self._stay_silent(record, expected, inbound, rest, now) else None
        return "done"

    async def _new_texts(
        self, channel: Channel, record: ChatRecord | None, inbound: InboundMessage, now: float
    ) -> tuple[list[CustomerText], list[OperatorMessage]]:
        """The customer messages this webhook brings that no turn has taken yet, and the
        operators' messages of the case if it was read back."""
        if self._inbound_mode == "confirm" and self._inbox is not None:
            after = (
                record.last_customer_message_id
                if record is not None and record.last_customer_message_id
                else None
            )
            read = await self._inbox.read_case(channel, inbound.chat_id, after)
            if not read.customer and record is None:
                # Omnidesk lists nothing from the customer yet: the webhook's own text it is, but
                # with no files: a block in that text may be typed (files come from the API only).
                return [CustomerText(0, inbound.text, attachments=[])], read.operator
            return read.customer, read.operator
        operator: list[OperatorMessage] = []
        if (
            self._inbox is not None
            and record is not None
            and (record.owner == "operator" or record.operator_unread)
        ):
            # The webhook has the customer's words; what the operator wrote, only the case has.
            operator = (await self._inbox.read_case(channel, inbound.chat_id, None)).operator
        if (
            record is not None
            and inbound.fingerprint
            and any(
                fingerprint == inbound.fingerprint and now - at < self._dedup_window_s
                for fingerprint, at in record.recent_fingerprints
            )
        ):
            return [], operator
        return [CustomerText(0, inbound.text)], operator

    async def _handed_back(self, channel: Channel, record: ChatRecord) -> bool:
        if self._inbox is None:
            return False
        label = (
            record.bot_label_id if record.bot_label_id is not None else await self._inbox.bot_label(channel)
        )
        if label is None:
            return False  # no bot label to watch: only `omnibot chat resume` hands it back
        if record.transfer_seq and self._deliveries is not None:
            cursor = await self._deliveries.cursor(record.key)
            if cursor.seq < record.transfer_seq:
                return False  # egress has not removed the label yet
        return label in await self._inbox.labels(channel, record.chat_id)

    async def _stay_silent(
        self,
        record: ChatRecord,
        expected: int,
        inbound: InboundMessage,
        texts: list[CustomerText],
        now: float,
        operator: Sequence[OperatorMessage] = (),
    ) -> bool:
        # A human owns the chat: keep the customer's (and the operator's) words, say nothing.
        record.recent_inbound = _remember(record.recent_inbound, inbound.event_id)
        record.last_customer_message_id = max(
            [record.last_customer_message_id, *(t.message_id for t in texts)]
        )
        if not await self._chats.commit(record, expected):
            return False
        await self._chats.append_transcript(
            transcript_lines(record.key, record.version, [t.text for t in texts], [], now, operator=operator)
        )
        log.info("chat is with an operator: no bot turn")
        return True

    async def _play(
        self,
        channel: Channel,
        record: ChatRecord,
        expected: int,
        inbound: InboundMessage,
        item: CustomerText,
        now: float,
        *,
        last: bool,
        operator: Sequence[OperatorMessage],
        handed_back: bool = False,
    ) -> ChatRecord | None:
        """One customer message through the agent. Returns the committed record, None on a conflict.
        `operator`: what operators wrote before it, for the transcript of its first commit;
        `handed_back`: that commit also hands the chat back to the bot (counted once it commits)."""
        agent = await self._agents.get(record.agent_name, record.agent_version)
        ctx = self._context(channel, inbound, record)
        state = msgspec.convert(record.state, engine.ChatState) if record.state else None
        events: list[engine.Event] = []
        if state is not None and state.waiting == "external" and state.pending_request_id:
            # A turn whose message is gone (dead-lettered) left the chat waiting: fail that
            # request so the agent's on_error path runs, then take the new message.
            events.append(
                engine.ExternalResult(request_id=state.pending_request_id, status=None, error="interrupted")
            )
        # Confirm mode: the files are the API message's, so a block the customer typed stays text.
        events.append(engine.CustomerMessage(text=item.text, attachments=item.attachments))
        if item.message_id:
            record.last_customer_message_id = item.message_id
        return await self._run(
            channel,
            record,
            expected,
            inbound,
            agent,
            ctx,
            state,
            events,
            item.text,
            now,
            last,
            operator,
            handed_back=handed_back,
        )

    async def _resume(self, channel: Channel, record: ChatRecord, inbound: InboundMessage) -> None:
        """This message's turn was cut off mid-request (a crashed worker): make the request again
        and carry on where the turn stopped. Requests are at-least-once for this reason."""
        now = self._clock()
        agent = await self._agents.get(record.agent_name, record.agent_version)
        ctx = self._context(channel, inbound, record)
        state = msgspec.convert(record.state, engine.ChatState) if record.state else engine.ChatState()
        call = engine.pending_call(agent, state, _as_datetime(now), ctx)
        log.warning("resuming a turn interrupted during an external request")
        result = (
            await self._call(call, channel)
            if call is not None
            else engine.ExternalResult(
                request_id=state.pending_request_id or "", status=None, error="interrupted"
            )
        )
        expected = record.version
        committed = await self._run(
            channel, next_version(record), expected, inbound, agent, ctx, state, [result], None, now, False
        )
        if committed is None:
            raise TransientError("the chat changed while resuming an interrupted turn")

    async def _run(
        self,
        channel: Channel,
        record: ChatRecord,
        expected: int,
        inbound: InboundMessage,
        agent: Any,
        ctx: engine.TurnContext,
        state: engine.ChatState | None,
        events: list[engine.Event],
        customer_text: str | None,
        now: float,
        last: bool,
        operator: Sequence[OperatorMessage] = (),
        *,
        handed_back: bool = False,
    ) -> ChatRecord | None:
        """Step the engine, commit and publish, and repeat for each external request it makes.

        Hand-overs and hand-backs are counted once the write that makes them commits: a turn
        whose commit conflicts, or that fails and is redelivered, runs again and must not count
        them twice."""
        first_commit = True
        label_removed = False
        for _ in range(MAX_EXTERNAL_CALLS_PER_TURN + 1):
            effects: list[engine.Effect] = []
            for event in events:
                state, produced = engine.step(agent, state, event, _as_datetime(now), ctx)
                effects.extend(produced)
            assert state is not None  # step always returns a state
            call = next((e for e in effects if isinstance(e, engine.CallExternal | engine.CallLLM)), None)
            actions = await self._actions(channel, record, state, effects, now, inbound.received_at)
            record.state = msgspec.to_builtins(state)
            stage(record, actions)
            transfer = next((a for a in actions if isinstance(a, TransferToOperator)), None)
            if transfer is not None:
                hand_to_operator(
                    record,
                    transfer_seq=transfer.seq,
                    bot_label_id=transfer.label_id if transfer.label_id is not None else channel.bot_label_id,
                )
            if call is None:
                record.turn_event = ""
                if last:
                    record.recent_inbound = _remember(record.recent_inbound, inbound.event_id)
            else:
                record.turn_event = inbound.event_id
            if call is None:
                # Before the commit: a timer whose commit then fails is stale and does nothing,
                # while one published after it could be lost to a crash in between.
                await self._arm_timer(agent, state, inbound)
            if not await self._chats.commit(record, expected):
                if first_commit:
                    return None
                raise TransientError("the chat changed during an external request")
            if first_commit and handed_back:
                metrics.record_returned_to_bot()
            first_commit = False
            if label_removed:
                metrics.record_transfer("label_removed")
                label_removed = False
            handoff = next((e for e in effects if isinstance(e, engine.Transfer)), None)
            if handoff is not None:
                metrics.record_transfer(handoff.reason)
            await publish_outbox(self._chats, record, self._publish)
            await self._chats.append_transcript(
                transcript_lines(
                    record.key,
                    record.version,
                    [] if customer_text is None else [customer_text],
                    actions,
                    now,
                    operator=operator,
                )
            )
            if call is None:
                return record
            result = await self._call(call, channel)
            bot_label = label_id(state.variables.get("bot_label_id"), channel.bot_label_id)
            label = (
                removed_bot_label(call, result, channel.domain, record.chat_id, bot_label)
                if isinstance(call, engine.CallExternal) and isinstance(result, engine.ExternalResult)
                else None
            )
            now = self._clock()
            expected = record.version
            record = next_version(record)
            if label is not None:
                # The seed's way: the agent removed the bot label itself. The case is the operator's.
                log.info("the agent's external request removed the bot label: the chat goes to an operator")
                hand_to_operator(record, transfer_seq=0, bot_label_id=label)
                label_removed = True  # counted with the next commit, which writes it
            events = [result]
            customer_text, operator = None, ()
        raise PermanentError("the turn made too many external requests")

    async def _call(
        self, call: engine.CallExternal | engine.CallLLM, channel: Channel
    ) -> engine.ExternalResult | engine.LLMResult:
        if isinstance(call, engine.CallExternal):
            return await self._fetch(call)
        if self._complete is None:
            return engine.LLMResult(
                request_id=call.request_id, text=None, error="no language model configured"
            )
        return await self._complete(call, channel)

    async def _arm_timer(self, agent: Any, state: engine.ChatState, inbound: InboundMessage) -> None:
        due = engine.timeout_due(agent, state)
        if due is None or self._schedule_timer is None:
            return
        await self._schedule_timer(
            ChatTimer(
                channel_id=inbound.channel_id,
                chat_id=inbound.chat_id,
                activity=state.last_activity,
                due_at=due,
                visitor=inbound.visitor,
            )
        )

    async def handle_timer(self, timer: ChatTimer) -> None:
        """A chat's inactivity timer arrived: run the agent's `on_timeout` if it is due and still
        meant (the customer has not written since, it has not run yet, no operator has the chat);
        send it on if it is early. Exactly once: the turn commits on the version it read."""
        channel = await self._channels.get(timer.channel_id)
        if channel is None:
            return
        key = chat_key(timer.channel_id, timer.chat_id)
        event_id = f"timer:{timer.activity!r}"
        inbound = InboundMessage(
            event_id=event_id,
            channel_id=timer.channel_id,
            chat_id=timer.chat_id,
            text="",
            visitor=timer.visitor,
            received_at=timer.due_at,
        )
        with bind(channel_id=timer.channel_id, chat_id=timer.chat_id, event_id=event_id):
            for _ in range(MAX_COMMIT_CONFLICTS):
                record = await self._chats.load(key)
                if record is not None and record.pending:
                    await self._publish_pending(record)
                if record is None or record.owner == "operator" or not record.state:
                    return
                if record.turn_event == event_id:
                    await self._resume(channel, record, inbound)
                    return
                agent = await self._agents.get(record.agent_name, record.agent_version)
                state = msgspec.convert(record.state, engine.ChatState)
                if state.last_activity != timer.activity or engine.timeout_due(agent, state) is None:
                    log.debug("stale inactivity timer")
                    return
                now = self._clock()
                if now < timer.due_at:
                    if self._schedule_timer is not None:
                        await self._schedule_timer(timer)
                    return
                log.info("the customer has been silent for %gs: running on_timeout", agent.session_timeout_s)
                ctx = self._context(channel, inbound, record)
                events: list[engine.Event] = [engine.SessionTimeout(activity=timer.activity)]
                committed = await self._run(
                    channel,
                    next_version(record),
                    record.version,
                    inbound,
                    agent,
                    ctx,
                    state,
                    events,
                    None,
                    now,
                    True,
                )
                if committed is not None:
                    return
            raise TransientError("the chat kept changing under concurrent writers")

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
        accepted_at: float,
    ) -> list[OutboundAction]:
        transfer = next((e for e in effects if isinstance(e, engine.Transfer)), None)
        summary = ""
        if transfer is not None:
            recent = await self._chats.transcript(record.key, limit=20)
            summary = transfer_summary(recent, state.variables, reason_text(transfer))
        return build_actions(
            effects,
            channel_id=record.channel_id,
            chat_id=record.chat_id,
            first_seq=record.out_seq + 1,
            now=now,
            summary=summary,
            label_id=label_id(state.variables.get("bot_label_id"), channel.bot_label_id),
            accepted_at=accepted_at,
        )

    async def _publish_pending(self, record: ChatRecord) -> None:
        # Committed by a turn that may have died before publishing: publish again, marked so.
        log.warning("republishing %d outbound actions of an interrupted turn", len(record.pending))
        await publish_outbox(self._chats, record, self._publish, earlier=len(record.pending))

    def _context(self, channel: Channel, inbound: InboundMessage, record: ChatRecord) -> engine.TurnContext:
        return engine.TurnContext(
            runtime=self._runtime(channel, inbound, record), max_slots_per_turn=self._max_slots
        )

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


def _remember(recent: list[str], event_id: str) -> list[str]:
    return [*recent, event_id][-RECENT_INBOUND_KEPT:]


def _fingerprints(
    recent: list[tuple[str, float]], fingerprint: str, now: float, window_s: float
) -> list[tuple[str, float]]:
    kept = [(f, at) for f, at in recent if now - at < window_s]
    return [*kept, (fingerprint, now)][-FINGERPRINTS_KEPT:]


def _as_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)
