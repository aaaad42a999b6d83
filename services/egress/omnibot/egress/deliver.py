"""Performing one outbound action in Omnidesk: once, in order, whatever fails in between.

Per chat, the delivery cursor says which action was performed last. Action N is performed only
when the cursor is at N-1 (an earlier action still on its way → deferred), and one at or below
the cursor is a duplicate (dropped). When an attempt may already have taken effect (the message
was redelivered after a crash, the previous attempt timed out or got a 5xx, or dialog republished
it), the case's recent messages are read back first and our own message is recognised instead of
being posted again.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp

from omnibot.egress.render import note_body, reply_body, same_text, text_to_html
from omnibot.shared import metrics, telemetry
from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.channels import Channel
from omnibot.shared.crypto import SecretBox
from omnibot.shared.deliveries import Cursor, DeliveryStore
from omnibot.shared.errors import Deferred, PermanentError, TransientError
from omnibot.shared.logs import bind
from omnibot.shared.messages import OutboundAction, SendFile, SendText, TransferToOperator, chat_key
from omnibot.shared.omnidesk import Account, OmnideskClient
from omnibot.shared.settle import RetryPolicy

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 25 * 1024 * 1024  # Omnidesk: 25 MB a file, 50 MB a message

# The `kind` label of omnibot_deliveries_total.
_KINDS: dict[type, str] = {SendText: "reply", SendFile: "file", TransferToOperator: "transfer"}


class FileSource(Protocol):
    async def download(self, url: str, max_bytes: int) -> tuple[bytes, str]:
        """(content, content type); raises PermanentError past max_bytes or when refused."""
        ...


class Deliverer:
    def __init__(
        self,
        *,
        client: OmnideskClient,
        channels: ChannelDirectory,
        deliveries: DeliveryStore,
        secrets: SecretBox,
        files: FileSource,
        policy: RetryPolicy,
        on_done: Callable[[OutboundAction], Awaitable[None]] | None = None,
    ) -> None:
        self._client = client
        self._channels = channels
        self._deliveries = deliveries
        self._secrets = secrets
        self._files = files
        self._policy = policy
        self._on_done = on_done

    async def deliver(
        self, action: OutboundAction, *, attempt: int, maybe_done: bool, force: bool = False
    ) -> None:
        """`maybe_done`: a previous attempt may have taken effect. `force`: a manual re-drive."""
        kind = _KINDS.get(type(action), "reply")
        started = time.perf_counter()
        result = "retried"  # what the consumer does with any failure not sorted below
        with telemetry.span(
            "omnibot.egress",
            f"egress deliver {kind}",
            attributes={"omnibot.channel_id": action.channel_id, "omnibot.seq": action.seq},
        ) as span:
            try:
                result = await self._deliver(action, attempt=attempt, maybe_done=maybe_done, force=force)
            except PermanentError:
                result = "dead_lettered"
                raise
            except Deferred:
                result = "deferred"
                raise
            finally:
                metrics.record_delivery(kind, result, time.perf_counter() - started)
                telemetry.set_attributes(span, **{"omnibot.result": result})
        if result == "delivered" and action.accepted_at and kind in ("reply", "file"):
            metrics.record_reply_latency(time.time() - action.accepted_at)

    async def _deliver(self, action: OutboundAction, *, attempt: int, maybe_done: bool, force: bool) -> str:
        key = chat_key(action.channel_id, action.chat_id)
        with bind(
            channel_id=action.channel_id, chat_id=action.chat_id, seq=action.seq, action=type(action).__name__
        ):
            channel = await self._channels.get(action.channel_id)
            if channel is None:
                raise PermanentError(f"channel {action.channel_id} does not exist")
            cursor = await self._deliveries.cursor(key)
            if not force:
                if action.seq <= cursor.seq:
                    log.info("already performed (cursor at %d): dropped", cursor.seq)
                    return "duplicate_skipped"
                if action.seq > cursor.seq + 1:
                    raise Deferred(f"waiting for action {cursor.seq + 1} of this chat", delay_s=0.25)
            account = Account(channel.domain, channel.email, self._secrets.decrypt(channel.api_key_enc))
            try:
                message_id, performed = await self._perform(
                    account, channel, action, cursor, maybe_done or action.maybe_duplicate
                )
            except PermanentError:
                await self._skip(key, cursor, action, force)
                raise
            except TransientError as exc:
                if self._policy.exhausted(attempt, exc):
                    await self._skip(key, cursor, action, force)
                    raise PermanentError(f"gave up after {attempt} attempts: {exc}") from exc
                raise
            # A text reply counts in the day's tally with the cursor's move (found done too: an
            # earlier attempt delivered it). A manual re-drive moves no cursor and is not counted.
            tally = cursor.with_reply(time.time()) if isinstance(action, SendText) else None
            if not force and not await self._deliveries.advance(
                key, cursor.seq, action.seq, message_id, tally=tally
            ):
                log.warning("the delivery cursor moved under us; another worker performed this action too")
            if self._on_done is not None:
                await self._on_done(action)
            log.info("delivered")
            return "delivered" if performed else "duplicate_skipped"

    async def _skip(self, key: str, cursor: Cursor, action: OutboundAction, force: bool) -> None:
        # The action goes to the dead letters; the chat's later actions must not wait for it.
        if not force:
            await self._deliveries.advance(key, cursor.seq, action.seq, None)

    async def _perform(
        self, account: Account, channel: Channel, action: OutboundAction, cursor: Cursor, maybe_done: bool
    ) -> tuple[int | None, bool]:
        """The Omnidesk message id, and whether this attempt performed it (False: found done)."""
        case_id = int(action.chat_id)
        staff_id = await self._client.staff_id(account)
        if maybe_done:
            found = await self._find_own(account, case_id, staff_id, cursor, action)
            if found is not None:
                log.info("found in Omnidesk already (message %d): not posting again", found)
                if isinstance(action, TransferToOperator):
                    # The note is there; the label change after it may not be. It is idempotent.
                    await self._hand_over(account, channel, case_id, action)
                return found, False
        if isinstance(action, SendText):
            message = await self._client.post_reply(account, case_id, reply_body(staff_id, action.text))
        elif isinstance(action, SendFile):
            message = await self._post_file(account, case_id, staff_id, action)
        else:
            message = await self._transfer(account, channel, case_id, action)
        return _message_id(message), True

    async def _find_own(
        self, account: Account, case_id: int, staff_id: int, cursor: Cursor, action: OutboundAction
    ) -> int | None:
        """Our message for this action, if Omnidesk has it: by the bot, after our last known one."""
        want_note = isinstance(action, TransferToOperator)
        text = _expected_text(action)
        for message in await self._client.recent_messages(account, case_id):
            if _message_id(message) is None or (_message_id(message) or 0) <= cursor.last_message_id:
                continue
            if int(message.get("staff_id") or 0) != staff_id or bool(message.get("note")) != want_note:
                continue
            if isinstance(action, SendFile):
                names = {str(a.get("file_name")) for a in message.get("attachments") or []}
                if action.name in names and (not action.caption or same_text(action.caption, message)):
                    return _message_id(message)
            elif same_text(text, message):
                return _message_id(message)
        return None

    async def _post_file(
        self, account: Account, case_id: int, staff_id: int, action: SendFile
    ) -> dict[str, Any]:
        content, content_type = await self._files.download(action.url, MAX_FILE_BYTES)
        # Not percent-encoded: Omnidesk, like browsers, takes the file name as UTF-8 as it stands.
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("message[staff_id]", str(staff_id))
        if action.caption:
            form.add_field("message[content]", action.caption)
            form.add_field("message[content_html]", text_to_html(action.caption))
        # A stream, not bytes: aiohttp sends large raw bytes in one blocking write.
        form.add_field(
            "message[attachments][0]",
            io.BytesIO(content),
            filename=_safe_name(action.name),
            content_type=content_type,
        )
        return await self._client.post_reply_multipart(account, case_id, form)

    async def _transfer(
        self, account: Account, channel: Channel, case_id: int, action: TransferToOperator
    ) -> dict[str, Any]:
        note = await self._client.post_note(account, case_id, note_body(action.summary))
        await self._hand_over(account, channel, case_id, action)
        return note

    async def _hand_over(
        self, account: Account, channel: Channel, case_id: int, action: TransferToOperator
    ) -> None:
        label_id = action.label_id if action.label_id is not None else channel.bot_label_id
        if label_id is None and channel.bot_label_title:
            label_id = await self._client.label_id(account, channel.bot_label_title)
        if label_id is not None:
            await self._remove_label(account, case_id, label_id)
        else:
            log.warning("no bot label configured: the case keeps its labels; set the channel's bot label")
        handoff: dict[str, Any] = {}
        if channel.transfer_status:
            handoff["status"] = channel.transfer_status
        if channel.transfer_group_id is not None:
            handoff["group_id"] = channel.transfer_group_id
        if handoff:
            await self._client.update_case(account, case_id, handoff)

    async def _remove_label(self, account: Account, case_id: int, label_id: int) -> None:
        """`delete_labels`, verified by reading the case back; else the full `labels` list.

        omnidesk-api.md tags the edit-case label parameters a GUESS: `delete_labels` is the
        documented-by-clients variant, replacing `labels` the fallback that any API accepting
        labels on create must also accept on edit.
        """
        case = await self._client.get_case(account, case_id)
        if label_id not in _labels(case):
            return
        await self._client.update_case(account, case_id, {"delete_labels": [label_id]})
        case = await self._client.get_case(account, case_id)
        labels = _labels(case)
        if label_id not in labels:
            log.info("bot label removed with delete_labels")
            return
        await self._client.update_case(account, case_id, {"labels": [x for x in labels if x != label_id]})
        if label_id in _labels(await self._client.get_case(account, case_id)):
            raise PermanentError(f"Omnidesk kept label {label_id} on case {case_id} (a locked label?)")
        log.info("bot label removed by replacing the labels list (delete_labels was ignored)")


def _safe_name(name: str) -> str:
    """A file name that cannot break the multipart header it is written into."""
    cleaned = "".join(" " if ch == '"' or ord(ch) < 32 else ch for ch in name).strip()
    return cleaned or "file"


def _labels(case: dict[str, Any]) -> list[int]:
    out: list[int] = []
    for value in case.get("labels") or []:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            out.append(int(value))
    return out


def _expected_text(action: OutboundAction) -> str:
    if isinstance(action, SendText):
        return action.text
    if isinstance(action, TransferToOperator):
        return action.summary
    return action.caption


def _message_id(message: dict[str, Any]) -> int | None:
    value = message.get("message_id")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
