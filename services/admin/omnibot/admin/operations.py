"""Management: the operations of every area over one database, for every front end.

The admin HTTP API, the `omnibot` command line and the web console build one `Management` and call
its areas: `agents`, `channels` (`channels.checks`: activation), `chats`, `dead_letters`,
`secrets`, `status` (`omnibot.admin.ops`). Answers are typed Structs; front ends encode them at their edge.
"""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from omnibot.admin.broker import BrokerLink
from omnibot.admin.ops.activation import ActivationChecks, WebhookProbe, probe_webhook_url
from omnibot.admin.ops.agents import AgentOperations
from omnibot.admin.ops.channels import ChannelOperations
from omnibot.admin.ops.chats import ChatOperations
from omnibot.admin.ops.context import Context, Refused
from omnibot.admin.ops.deadletters import DeadLetterOperations
from omnibot.admin.ops.secrets import SecretOperations
from omnibot.admin.ops.status import StatusOperations
from omnibot.admin.ops.views import iso_time
from omnibot.shared.crypto import SecretBox
from omnibot.shared.mongo import Document
from omnibot.shared.settings import Settings

__all__ = ["Management", "Refused", "WebhookProbe", "iso_time", "probe_webhook_url"]


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
        self.context = Context(db, secrets, settings, broker)
        checks = ActivationChecks(
            self.context, probe_webhook=probe_webhook, omnidesk_timeout_s=omnidesk_timeout_s
        )
        self.agents = AgentOperations(self.context)
        self.channels = ChannelOperations(self.context, checks)
        self.chats = ChatOperations(self.context)
        self.dead_letters = DeadLetterOperations(self.context)
        self.secrets = SecretOperations(self.context)
        self.status = StatusOperations(self.context, db)
