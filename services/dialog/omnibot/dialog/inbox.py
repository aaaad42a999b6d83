"""What dialog reads back from Omnidesk before a turn: new customer messages, what operators
wrote, and the case's labels.

Omnidesk's rules may send a webhook twice (its retries, the incoming and the changed rule both
firing) and send one when the bot itself changed the case (its reply, a label). With
INBOUND_MODE=confirm a webhook is only a prompt: the customer messages that are really new are
those of the case with an id above the last one taken. Their text is rebuilt as Omnidesk's chat
shows it, so `client_message` keeps the form of the seed ("text\n—————\nВложенные файлы:\nurl"),
and their files are the message's `attachments[]`: a block the customer types is only text.

The same read-back shows what operators wrote to the customer (staff messages that are not the
bot's own and not internal notes): no webhook carries them (the rule's body has the customer's
text only), so this is how they reach the transcript.
"""

from __future__ import annotations

import logging
from email.utils import parsedate_to_datetime
from typing import Any

import msgspec

from omnibot.agents.chat_text import attachment_urls, message_text
from omnibot.shared.channels import Channel
from omnibot.shared.chat_record import OperatorMessage
from omnibot.shared.crypto import SecretBox
from omnibot.shared.errors import PermanentError
from omnibot.shared.omnidesk import Account, OmnideskClient

log = logging.getLogger(__name__)


class CustomerText(msgspec.Struct, frozen=True):
    message_id: int
    text: str
    # The API message's `attachments[]` (confirm mode): the engine takes these as the files and
    # leaves a "Вложенные файлы:" block the customer typed in `text` as their words. None
    # (webhook mode, where the text is all there is): the block in `text` is parsed.
    attachments: list[str] | None = None


def _from_customer(message: dict[str, Any]) -> bool:
    return int(message.get("user_id") or 0) != 0 and not message.get("note")


def _id(message: dict[str, Any]) -> int:
    return int(message.get("message_id") or 0)


def new_customer_messages(messages: list[dict[str, Any]], after_id: int | None) -> list[CustomerText]:
    """Customer messages above `after_id`, oldest first. For a chat never seen (None): the
    customer's messages since the last one that was not theirs (what is still unanswered)."""
    ordered = sorted(messages, key=_id)
    if after_id is None:
        tail: list[dict[str, Any]] = []
        for message in reversed(ordered):
            if not _from_customer(message):
                break
            tail.append(message)
        chosen = list(reversed(tail))
    else:
        chosen = [m for m in ordered if _id(m) > after_id and _from_customer(m)]
    return [CustomerText(_id(m), message_text(m), attachment_urls(m)) for m in chosen]


def operator_messages(messages: list[dict[str, Any]], bot_staff_id: int) -> list[OperatorMessage]:
    """What staff other than the bot wrote to the customer (internal notes are not the
    conversation), oldest first, each at the time Omnidesk gives it."""
    found = [
        m
        for m in messages
        if int(m.get("staff_id") or 0) not in (0, bot_staff_id)
        and not int(m.get("user_id") or 0)
        and not m.get("note")
    ]
    return [
        OperatorMessage(message_id=_id(m), text=message_text(m), at=_time(m.get("created_at")))
        for m in sorted(found, key=_id)
    ]


def _time(value: Any) -> float:
    """Omnidesk's `created_at` ("Mon, 15 May 2023 09:28:43 +0300") as a timestamp; 0 if unreadable."""
    try:
        return parsedate_to_datetime(str(value)).timestamp() if value else 0.0
    except (TypeError, ValueError, IndexError):
        return 0.0


class Readback(msgspec.Struct, frozen=True):
    customer: list[CustomerText]
    operator: list[OperatorMessage]


def case_labels(case: dict[str, Any]) -> set[int]:
    labels: set[int] = set()
    for value in case.get("labels") or []:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            labels.add(int(value))
    return labels


class OmnideskInbox:
    def __init__(self, client: OmnideskClient, secrets: SecretBox) -> None:
        self._client = client
        self._secrets = secrets

    def _account(self, channel: Channel) -> Account:
        return Account(channel.domain, channel.email, self._secrets.decrypt(channel.api_key_enc))

    async def read_case(self, channel: Channel, chat_id: str, after_id: int | None) -> Readback:
        """The case's recent messages: the customer's above `after_id`, and the operators'."""
        account = self._account(channel)
        messages = await self._client.recent_messages(account, int(chat_id))
        return Readback(new_customer_messages(messages, after_id), await self._operators(account, messages))

    async def _operators(self, account: Account, messages: list[dict[str, Any]]) -> list[OperatorMessage]:
        if not any(int(m.get("staff_id") or 0) for m in messages):
            return []
        try:
            bot = await self._client.staff_id(account)  # looked up once per process
        except PermanentError as exc:
            # Without the bot's id its own replies would pass for an operator's: record none.
            log.warning("operator messages not recorded: %s", exc)
            return []
        return operator_messages(messages, bot)

    async def bot_label(self, channel: Channel) -> int | None:
        """The channel's bot label: its id, or the id of the label with its title."""
        if channel.bot_label_id is not None:
            return channel.bot_label_id
        if not channel.bot_label_title:
            return None
        return await self._client.label_id(self._account(channel), channel.bot_label_title)

    async def labels(self, channel: Channel, chat_id: str) -> set[int]:
        return case_labels(await self._client.get_case(self._account(channel), int(chat_id)))
