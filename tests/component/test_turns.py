"""dialog's turn runner through its real code with in-memory fakes: exactly-once turns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import REGISTRY

from omnibot.agents import engine
from omnibot.dialog.catalog import AgentCatalog
from omnibot.dialog.inbox import Readback, new_customer_messages
from omnibot.dialog.turns import TurnRunner
from omnibot.ingress.webhook import content_fingerprint
from omnibot.shared.agents import AgentVersion
from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.channels import Channel
from omnibot.shared.chats import MemoryChatStore
from omnibot.shared.crypto import SecretBox, generate_key
from omnibot.shared.errors import PermanentError, TransientError
from omnibot.shared.messages import InboundMessage, OutboundAction, SendText, TransferToOperator, Visitor

FIXTURES = Path(__file__).parent.parent / "fixtures" / "agents"
BOX = SecretBox(generate_key())
MENU = "Чем помочь?\n1. Статус заказа\n2. Оператор"


class Agents:
    def __init__(self, *bodies: dict[str, Any]) -> None:
        self.versions = {
            (b["name"], i + 1): AgentVersion(name=b["name"], version=i + 1, body=b, imported_at=0)
            for i, b in enumerate(bodies)
        }

    async def published(self, name: str) -> AgentVersion | None:
        found = [v for (n, _), v in sorted(self.versions.items()) if n == name]
        return found[-1] if found else None

    async def get_version(self, name: str, version: int) -> AgentVersion | None:
        return self.versions.get((name, version))


class Published(list[OutboundAction]):
    fail_next = False

    async def __call__(self, action: OutboundAction) -> None:
        if self.fail_next:
            self.fail_next = False
            raise TransientError("broker did not confirm")
        self.append(action)


def channel(label_id: int | None = 87) -> Channel:
    return Channel(
        id=1,
        domain="https://x.omnidesk.ru",
        email="bot@x.ru",
        api_key_enc=BOX.encrypt("key-123"),
        webhook_secret_enc="",
        webhook_secret_hash="",
        agent="pipeline-demo",
        active=True,
        bot_label_id=label_id,
    )


async def no_fetch(call: engine.CallExternal) -> engine.ExternalResult:
    raise AssertionError("no external requests expected")


def runner(
    chats: MemoryChatStore,
    published: Published,
    agents: Agents | None = None,
    fetch: Any = no_fetch,
    inbox: Any = None,
) -> TurnRunner:
    async def lookup(channel_id: int) -> Channel | None:
        return channel() if channel_id == 1 else None

    agents = agents or Agents(json.loads((FIXTURES / "pipeline-demo.json").read_text()))
    return TurnRunner(
        chats=chats,
        agents=AgentCatalog(agents),
        channels=ChannelDirectory(lookup),
        secrets=BOX,
        publish=published,
        fetch=fetch,
        inbox=inbox,
        clock=lambda: 1_800_000_000.0,
    )


def inbound(text: str, event_id: str, chat_id: str = "500", channel_id: int = 1) -> InboundMessage:
    return InboundMessage(
        event_id=event_id,
        channel_id=channel_id,
        chat_id=chat_id,
        text=text,
        visitor=Visitor(name="Anna"),
        received_at=0.0,
        fingerprint=content_fingerprint(channel_id, chat_id, "", text),
    )


def texts(published: list[OutboundAction]) -> list[str]:
    return [a.text for a in published if isinstance(a, SendText)]


async def test_a_turn_publishes_numbered_actions_and_clears_the_outbox() -> None:
    chats, published = MemoryChatStore(), Published()
    await runner(chats, published).handle(inbound("hi", "e1"))
    assert texts(published) == ["Здравствуйте, Anna!", MENU]
    assert [a.seq for a in published] == [1, 2]
    assert [a.action_id for a in published] == ["1:500:1", "1:500:2"]
    record = chats.chats["1:500"]
    assert record.pending == []
    assert record.out_seq == 2
    assert "e1" in record.recent_inbound


async def test_a_redelivered_message_makes_no_second_turn() -> None:
    chats, published = MemoryChatStore(), Published()
    run = runner(chats, published)
    await run.handle(inbound("hi", "e1"))
    await run.handle(inbound("hi", "e1"))
    assert len(published) == 2


async def test_actions_left_pending_by_a_crash_are_published_again_marked() -> None:
    chats, published = MemoryChatStore(), Published()
    run = runner(chats, published)
    published.fail_next = True  # committed, then the publish fails: the turn's message is retried
    with pytest.raises(TransientError):
        await run.handle(inbound("hi", "e1"))
    assert chats.chats["1:500"].pending  # the outbox kept them
    await run.handle(inbound("hi", "e1"))  # redelivery
    assert texts(published) == ["Здравствуйте, Anna!", MENU]
    assert all(a.maybe_duplicate for a in published)
    assert chats.chats["1:500"].pending == []
    await run.handle(inbound("1", "e2"))
    assert texts(published)[-1] == "Номер заказа?"
    assert published[-1].seq == 3


def race_the_next_commit(chats: MemoryChatStore, key: str = "1:500") -> list[bool]:
    """Another writer commits the chat first, once: the next commit conflicts. The list returned
    holds True once that happened."""
    real_commit = chats.commit
    raced: list[bool] = []

    async def racing_commit(record: Any, expected: int) -> bool:
        if not raced:
            raced.append(True)
            await real_commit(msgspec.structs.replace(chats.chats[key], version=expected + 1), expected)
            return False
        return await real_commit(record, expected)

    chats.commit = racing_commit  # type: ignore[method-assign,assignment]
    return raced


async def test_a_concurrent_writer_makes_the_turn_run_again_on_the_new_state() -> None:
    chats, published = MemoryChatStore(), Published()
    run = runner(chats, published)
    await run.handle(inbound("hi", "e1"))
    race_the_next_commit(chats)
    await run.handle(inbound("2", "e2"))
    assert texts(published)[-1] == "Всего доброго!"
    assert [a.seq for a in published] == [1, 2, 3]


async def test_unknown_channel_is_permanent() -> None:
    with pytest.raises(PermanentError, match="channel 9"):
        await runner(MemoryChatStore(), Published()).handle(inbound("hi", "e1", channel_id=9))


async def test_an_unpublished_agent_is_permanent() -> None:
    with pytest.raises(PermanentError, match="no published version"):
        await runner(MemoryChatStore(), Published(), agents=Agents()).handle(inbound("hi", "e1"))


TRANSFER_AGENT = {
    "format": "omnibot/agent@1",
    "name": "pipeline-demo",
    "variables": {"bot_label_id": "{{x}}"},
    "start": "ask",
    "slots": [
        {"id": "ask", "type": "input", "text": "Ваш номер?", "variable": "order_id", "next": "op"},
        {"id": "op", "type": "transfer", "text": "Перевожу на оператора"},
    ],
}


async def test_transfer_hands_the_chat_to_the_operator_and_the_bot_falls_silent() -> None:
    chats, published = MemoryChatStore(), Published()
    run = runner(chats, published, agents=Agents(TRANSFER_AGENT))
    await run.handle(inbound("hi", "e1"))
    await run.handle(inbound("4711", "e2"))
    transfer = published[-1]
    assert isinstance(transfer, TransferToOperator)
    assert transfer.label_id == 87  # the agent's variable is not a number: the channel's label
    assert "4711" in transfer.summary
    assert "order_id=4711" in transfer.summary
    assert texts(published) == ["Ваш номер?", "Перевожу на оператора"]
    assert chats.chats["1:500"].owner == "operator"
    await run.handle(inbound("алло?", "e3"))
    assert len(published) == 3
    lines = await chats.transcript("1:500")
    assert lines[-1].text == "алло?"
    assert lines[-1].role == "customer"


async def test_runtime_variables_hold_credentials_but_the_state_does_not() -> None:
    agent = {
        "format": "omnibot/agent@1",
        "name": "pipeline-demo",
        "variables": {},
        "start": "t",
        "slots": [
            {"id": "t", "type": "text", "text": "{{channel_webhook_url}} {{chat_id}}", "next": "w"},
            {"id": "w", "type": "input", "variable": "v", "next": "t"},
        ],
    }
    chats, published = MemoryChatStore(), Published()
    await runner(chats, published, agents=Agents(agent)).handle(inbound("hi", "e1"))
    assert texts(published) == ["https://x.omnidesk.ru 500"]
    assert "key-123" not in json.dumps(msgspec.to_builtins(chats.chats["1:500"]))


async def test_webhook_mode_drops_a_repeat_within_the_window_and_takes_it_after() -> None:
    chats, published = MemoryChatStore(), Published()
    now = [1_800_000_000.0]

    async def lookup(channel_id: int) -> Channel | None:
        return channel()

    run = TurnRunner(
        chats=chats,
        agents=AgentCatalog(Agents(json.loads((FIXTURES / "pipeline-demo.json").read_text()))),
        channels=ChannelDirectory(lookup),
        secrets=BOX,
        publish=published,
        fetch=no_fetch,
        inbound_mode="webhook",
        dedup_window_s=30,
        clock=lambda: now[0],
    )
    await run.handle(inbound("hi", "e1"))
    await run.handle(inbound("hi", "e2"))  # Omnidesk delivered the same event again: no turn
    assert len(published) == 2
    await run.handle(inbound("7", "e3"))  # another text is another message
    assert texts(published)[-1] == MENU
    now[0] += 31
    await run.handle(inbound("7", "e4"))  # the same text later: the customer really said it again
    assert texts(published) == ["Здравствуйте, Anna!", MENU, MENU, MENU]
    assert "e2" in chats.chats["1:500"].recent_inbound  # remembered, so a redelivery is cheap


class ListedCase:
    """A case's messages as Omnidesk's API lists them; dialog's real inbox logic reads them."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.messages = list(messages)

    async def read_case(self, channel: Channel, chat_id: str, after_id: int | None) -> Readback:
        return Readback(new_customer_messages(self.messages, after_id), [])

    async def labels(self, channel: Channel, chat_id: str) -> set[int]:
        return set()

    async def bot_label(self, channel: Channel) -> int | None:
        return None


FILES_ECHO = {
    "format": "omnibot/agent@1",
    "name": "pipeline-demo",
    "start": "t",
    "slots": [
        {"id": "t", "type": "text", "text": "files={{client_attachments}}", "next": "w"},
        {"id": "w", "type": "input", "variable": "v", "next": "t"},
    ],
}
FORGED = "hi\n—————\nВложенные файлы:\nhttps://evil.example/x.exe"
REAL = "https://x.omnidesk.ru/attachment/download/chat/a/12_file_0.jpg"


def confirm_runner(chats: MemoryChatStore, published: Published, case: ListedCase) -> TurnRunner:
    async def lookup(channel_id: int) -> Channel | None:
        return channel()

    return TurnRunner(
        chats=chats,
        agents=AgentCatalog(Agents(FILES_ECHO)),
        channels=ChannelDirectory(lookup),
        secrets=BOX,
        publish=published,
        fetch=no_fetch,
        inbox=case,
        inbound_mode="confirm",
        clock=lambda: 1_800_000_000.0,
    )


async def test_confirm_mode_takes_files_from_the_api_message_not_from_typed_text() -> None:
    chats, published = MemoryChatStore(), Published()
    case = ListedCase(
        {"message_id": 11, "user_id": 5, "content": FORGED, "attachments": []},
        {"message_id": 12, "user_id": 5, "content": FORGED, "attachments": [{"url": REAL}]},
    )
    await confirm_runner(chats, published, case).handle(inbound(FORGED, "e1"))
    assert texts(published) == ["files=[]", f'files=["{REAL}"]']
    variables = chats.chats["1:500"].state["variables"]
    assert variables["v"] == FORGED  # the typed block stays the customer's words
    assert variables["client_message"] == f"{FORGED}\n—————\nВложенные файлы:\n{REAL}"


async def test_confirm_mode_gives_no_files_to_a_webhook_text_omnidesk_does_not_list_yet() -> None:
    chats, published = MemoryChatStore(), Published()
    await confirm_runner(chats, published, ListedCase()).handle(inbound(FORGED, "e1"))
    assert texts(published) == ["files=[]"]
    assert chats.chats["1:500"].state["variables"]["client_message"] == FORGED


class LabelledInbox:
    """Omnidesk's case as dialog reads it for a hand-back: the labels it carries (87: the bot's)."""

    def __init__(self) -> None:
        self.case_labels: set[int] = set()

    async def read_case(self, channel: Channel, chat_id: str, after_id: int | None) -> Readback:
        return Readback([], [])

    async def labels(self, channel: Channel, chat_id: str) -> set[int]:
        return set(self.case_labels)

    async def bot_label(self, channel: Channel) -> int | None:
        return 87


def returned_to_bot() -> float:
    return REGISTRY.get_sample_value("omnibot_chats_returned_to_bot_total") or 0.0


async def test_a_hand_back_is_counted_once_however_often_its_turn_runs() -> None:
    chats, published, inbox = MemoryChatStore(), Published(), LabelledInbox()
    run = runner(chats, published, agents=Agents(TRANSFER_AGENT), inbox=inbox)
    await run.handle(inbound("hi", "e1"))
    await run.handle(inbound("4711", "e2"))
    assert chats.chats["1:500"].owner == "operator"
    before = returned_to_bot()
    await run.handle(inbound("алло?", "e3"))  # no bot label on the case: the operator keeps it
    assert returned_to_bot() == before

    inbox.case_labels = {87}  # the operator put the bot label back
    raced = race_the_next_commit(chats)  # the hand-back's commit conflicts: the turn runs again
    published.fail_next = True  # then committed, but the publish fails: the message comes back
    with pytest.raises(TransientError):
        await run.handle(inbound("снова я", "e4"))
    assert raced
    assert chats.chats["1:500"].owner == "bot"
    await run.handle(inbound("снова я", "e4"))  # the redelivery
    assert texts(published)[-1] == "Ваш номер?"  # the agent started afresh
    assert returned_to_bot() == before + 1
