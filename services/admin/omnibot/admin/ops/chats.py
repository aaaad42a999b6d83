"""Chats: show, list, and handing a chat to an operator and back by hand.

Transfer and resume write the chat record by the rules dialog follows (`omnibot.shared.chat_record`):
a conditional commit on the record's version (read again when dialog wrote first), actions staged in
the outbox before publishing. Each is counted once its write commits, as dialog counts its own
(`omnibot_transfers_total{reason="manual"}`, `omnibot_chats_returned_to_bot_total`), in the
registry of the process that made it: the admin service's for the API and the console.
"""

from __future__ import annotations

import logging
import time

from omnibot.admin.ops.context import Context, Refused, broker_refusal
from omnibot.admin.ops.views import chat_summary, chat_view, page
from omnibot.admin.schemas import DEFAULT_PAGE, MAX_PAGE, ChatSummary, ChatView, Page
from omnibot.admin.validation import page_problems
from omnibot.agents.handoff import transfer_summary
from omnibot.shared import amqp, chat_record, metrics
from omnibot.shared.chats import ChatRecord
from omnibot.shared.errors import TransientError
from omnibot.shared.messages import OutboundAction, chat_key, encoder

log = logging.getLogger(__name__)

MAX_CHAT_CONFLICTS = 5
TRANSCRIPT_LINES = 200
MAX_TRANSCRIPT_LINES = 10_000


class ChatOperations:
    def __init__(self, context: Context) -> None:
        self._ctx = context

    async def show_chat(
        self, channel_id: int, chat_id: str, *, transcript: int = TRANSCRIPT_LINES
    ) -> ChatView:
        """`transcript`: how many of the last transcript lines (0 to 10000)."""
        if not 0 <= transcript <= MAX_TRANSCRIPT_LINES:
            raise Refused("invalid", [f"transcript: must be between 0 and {MAX_TRANSCRIPT_LINES} lines"])
        record = await self._ctx.require_chat(channel_id, chat_id)
        lines = await self._ctx.chats.transcript(record.key, limit=transcript) if transcript else []
        return chat_view(record, lines)

    async def list_chats(
        self,
        channel_id: int,
        *,
        owner: str | None = None,
        updated_since: float | None = None,
        limit: int = DEFAULT_PAGE,
        offset: int = 0,
    ) -> Page[ChatSummary]:
        """A channel's chats, most recently updated first."""
        problems = page_problems(limit, offset, max_limit=MAX_PAGE)
        if owner not in (None, "bot", "operator"):
            problems.append("owner: must be bot or operator")
        if problems:
            raise Refused("invalid", problems)
        await self._ctx.require_channel(channel_id)
        records, total = await self._ctx.store.chats(
            channel_id, owner=owner, updated_since=updated_since, limit=limit, offset=offset
        )
        return page([chat_summary(r) for r in records], total, limit, offset)

    async def transfer_chat(self, channel_id: int, chat_id: str) -> ChatView:
        """Hand the chat to a human by hand, as the agent's transfer slot does.

        A transfer action goes through the chat's outbox to egress, which leaves the operator a
        note, removes the bot label and sets the channel's transfer status and group; the chat is
        the operator's at once, so the bot says nothing more. Without the label change, dialog
        would see the bot label still on the case and take the chat straight back. A chat already
        with an operator is left as it is.
        """
        channel = await self._ctx.require_channel(channel_id)
        publisher = await self._outbound_publisher()
        try:
            for _ in range(MAX_CHAT_CONFLICTS):
                record = await self._ctx.require_chat(channel_id, chat_id)
                if record.owner == "operator":
                    return await self.show_chat(channel_id, record.chat_id)
                recent = await self._ctx.chats.transcript(record.key, limit=20)
                variables = dict((record.state or {}).get("variables") or {})
                summary = transfer_summary(recent, variables, "an administrator handed it over")
                # The outbox is kept: earlier actions may not have been published yet.
                changed = chat_record.next_version(record, keep_outbox=True)
                earlier = len(changed.pending)
                action = chat_record.transfer_action(changed, summary=summary, now=time.time())
                chat_record.stage(changed, [action])
                chat_record.hand_to_operator(
                    changed, transfer_seq=action.seq, bot_label_id=channel.bot_label_id
                )
                if not await self._ctx.chats.commit(changed, record.version):
                    continue  # dialog wrote first: read again
                metrics.record_transfer("manual")
                await self._note(changed, "handed to an operator by hand")

                async def publish(outbound: OutboundAction) -> None:
                    key = chat_key(outbound.channel_id, outbound.chat_id)
                    await publisher.publish(key, encoder.encode(outbound), message_id=outbound.action_id)

                try:
                    await chat_record.publish_outbox(self._ctx.chats, changed, publish, earlier=earlier)
                except TransientError as exc:
                    # Committed: the outbox keeps the action, and dialog publishes it with the
                    # chat's next message. The bot is silent in the meantime either way.
                    log.warning("hand transfer of chat %s waits in its outbox: %s", changed.key, exc)
                return await self.show_chat(channel_id, record.chat_id)
        finally:
            await publisher.close()
        raise Refused("conflict", ["the chat kept changing while it was being updated; try again"])

    async def resume_chat(self, channel_id: int, chat_id: str) -> ChatView:
        """Hand the chat back to the bot as a fresh session: the next message starts the agent.

        A chat that is the bot's already is left as it is, so asking twice changes nothing (and
        writes no second transcript line). Nothing changes in Omnidesk: if the channel's rules only
        send cases carrying the bot label, put the label back on the case (which alone also hands
        the chat back to the bot).
        """
        for _ in range(MAX_CHAT_CONFLICTS):
            record = await self._ctx.require_chat(channel_id, chat_id)
            if record.owner == "bot":
                return await self.show_chat(channel_id, record.chat_id)
            changed = chat_record.next_version(record, keep_outbox=True)
            chat_record.hand_back(changed, restart=True)
            if await self._ctx.chats.commit(changed, record.version):
                metrics.record_returned_to_bot()
                await self._note(changed, "handed back to the bot by hand")
                return await self.show_chat(channel_id, record.chat_id)
        raise Refused("conflict", ["the chat kept changing while it was being updated; try again"])

    async def _note(self, record: ChatRecord, text: str) -> None:
        await self._ctx.chats.append_transcript([chat_record.note_line(record, text, time.time())])

    async def _outbound_publisher(self) -> amqp.Publisher:
        broker, connection = await self._ctx.connect()
        try:
            return await amqp.Publisher.open(connection, broker.topology.outbound)
        except Exception as exc:  # noqa: BLE001 - aio-pika raises many kinds; the broker is the cause
            raise broker_refusal(exc) from None
