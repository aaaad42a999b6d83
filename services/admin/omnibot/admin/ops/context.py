"""What every area of management shares: the stores, the secret box, the broker link, refusals.

`Refused` is the one way an operation says no: a stable `code` (the admin API maps it to a status),
every problem as "field: what is wrong" (so a form can show each next to its field), and `details`
for data the caller needs (the activation checks).
"""

from __future__ import annotations

from typing import Any

from aio_pika.abc import AbstractRobustConnection
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.admin.broker import BrokerLink
from omnibot.admin.store import MongoAdminStore
from omnibot.shared.agents import MongoAgentStore
from omnibot.shared.channels import Channel, MongoChannelStore
from omnibot.shared.chats import ChatRecord, MongoChatStore
from omnibot.shared.crypto import SecretBox
from omnibot.shared.errors import OmnibotError, TransientError
from omnibot.shared.ids import parse_case_id
from omnibot.shared.messages import chat_key
from omnibot.shared.mongo import Document
from omnibot.shared.printable import printable
from omnibot.shared.settings import Settings


class Refused(OmnibotError):
    """The operation was refused; `problems` says every reason, `details` carries data (checks)."""

    def __init__(self, code: str, problems: list[str], *, details: dict[str, Any] | None = None) -> None:
        super().__init__("; ".join(problems))
        self.code = code
        self.problems = problems
        self.details = details

    def by_field(self) -> dict[str, list[str]]:
        """The problems per field name ("" for those about no one field), for a form."""
        fields: dict[str, list[str]] = {}
        for problem in self.problems:
            name, sep, message = problem.partition(": ")
            if sep and name.isidentifier():
                fields.setdefault(name, []).append(message)
            else:
                fields.setdefault("", []).append(problem)
        return fields


def not_found(what: str) -> Refused:
    return Refused("not_found", [f"{what} does not exist"])


class Context:
    """The dependencies of the operations, opened once by the front end and shared by the areas."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        secrets: SecretBox,
        settings: Settings,
        broker: BrokerLink | None,
    ) -> None:
        self.agents = MongoAgentStore(db)
        self.channels = MongoChannelStore(db)
        self.chats = MongoChatStore(db)
        self.store = MongoAdminStore(db)
        self.secrets = secrets
        self.settings = settings
        self.broker = broker

    async def require_channel(self, channel_id: int) -> Channel:
        channel = await self.channels.get(channel_id)
        if channel is None:
            raise not_found(f"channel {channel_id}")
        return channel

    async def require_chat(self, channel_id: int, chat_id: str) -> ChatRecord:
        # Only the canonical spelling names a chat ("０１" or "01" is not case 1: ids.py says why).
        canonical = parse_case_id(chat_id)
        if canonical is None:
            raise Refused(
                "not_found",
                [
                    f"chat {printable(chat_id)!r} of channel {channel_id} does not exist: a chat id is the "
                    "Omnidesk case id, in ASCII digits without leading zeros"
                ],
            )
        record = await self.chats.load(chat_key(channel_id, canonical))
        if record is None:
            raise not_found(f"chat {chat_id} of channel {channel_id}")
        return record

    def require_broker(self) -> BrokerLink:
        if self.broker is None:
            raise Refused("unavailable", ["this needs RabbitMQ, and no broker is configured here"])
        return self.broker

    async def connect(self) -> tuple[BrokerLink, AbstractRobustConnection]:
        broker = self.require_broker()
        try:
            return broker, await broker.connection()
        except TransientError as exc:
            raise Refused("unavailable", [str(exc)]) from None

    def webhook_url(self, channel: Channel) -> str:
        return self.webhook_url_for(channel.id, self.secrets.decrypt(channel.webhook_secret_enc))

    def webhook_url_for(self, channel_id: int, secret: str) -> str:
        """The Chatbot webhook URL of a channel id and secret (also one reserved, not yet saved)."""
        return f"{self.settings.public_base_url.rstrip('/')}/webhooks/omnidesk/{channel_id}/{secret}"


def broker_refusal(exc: BaseException) -> Refused:
    return Refused("unavailable", [f"RabbitMQ refused the operation ({type(exc).__name__})"])
