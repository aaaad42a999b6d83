"""The admin service as it runs (`serve_admin`) with the real ingress, RabbitMQ and the sandbox:
what the API changes is what the webhook listener and the queues see.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiohttp
import msgspec
import pytest
from prometheus_client import REGISTRY

from omnibot.admin.service import serve_admin
from omnibot.dialog.service import serve_dialog
from omnibot.egress.service import serve_egress
from omnibot.ingress.service import serve_ingress
from omnibot.sandbox.state import SandboxState
from omnibot.shared.messages import SendText, encoder
from omnibot.shared.metrics import TRANSFER_REASONS
from omnibot.shared.settings import Settings
from omnibot.shared.topology import Topology, declare_topology
from omnibot.testkit.ports import free_port
from omnibot.testkit.services import ServiceTask
from tests.conftest import take_all
from tests.harness import (
    FIXTURES,
    add_rules,
    bot_texts,
    customer_says,
    eventually,
    setup_channel,
    wait_bot_messages,
)

TOKEN = "integration-admin-token-0123456789"
SEED = {"event": "new_message", "message": {"kind": "text", "text": "Добрый день"}, "chat_id": "2000"}


def handoff_counts() -> dict[str, float]:
    """This process's `omnibot_transfers_total` by reason and `omnibot_chats_returned_to_bot_total`."""
    counts = {
        reason: REGISTRY.get_sample_value("omnibot_transfers_total", {"reason": reason}) or 0.0
        for reason in (*TRANSFER_REASONS, "other")
    }
    counts["returned"] = REGISTRY.get_sample_value("omnibot_chats_returned_to_bot_total") or 0.0
    return counts


@dataclass
class Running:
    settings: Settings
    sandbox: SandboxState
    sandbox_url: str
    session: aiohttp.ClientSession

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.settings.admin_port}/api/v1"

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {TOKEN}"}}
        if isinstance(body, bytes):
            kwargs["data"] = body
            kwargs["headers"]["Content-Type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.api + path, **kwargs) as response:
            return response.status, await response.json()

    async def webhook(self, url: str, method: str = "POST") -> tuple[int, Any]:
        async with self.session.request(method, url, json=SEED if method == "POST" else None) as response:
            return response.status, await response.json()


@pytest.fixture
def admin_settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, admin_token=TOKEN, admin_port=free_port())


@pytest.fixture
async def running(
    admin_settings: Settings, broker: Any, db: Any, sandbox: tuple[SandboxState, str]
) -> AsyncIterator[Running]:
    services = [
        ServiceTask("ingress", serve_ingress, admin_settings),
        ServiceTask("admin", serve_admin, admin_settings),
    ]
    for service in services:
        await service.wait_ready()
    async with aiohttp.ClientSession() as session:
        yield Running(admin_settings, sandbox[0], sandbox[1], session)
    for service in reversed(services):
        await service.stop()


async def channel_via_api(running: Running, **overrides: Any) -> dict[str, Any]:
    agent = (FIXTURES / "agents" / "pipeline-demo.json").read_bytes()
    assert (await running.call("POST", "/agents?publish=true", agent))[0] == 201
    body = {
        "domain": running.sandbox_url,
        "api_key": running.sandbox.api_key,
        "email": running.sandbox.bot_email,
        "agent": "pipeline-demo",
        "activate": True,
        **overrides,
    }
    status, channel = await running.call("POST", "/channels", body)
    assert status == 201, channel
    return dict(channel)


async def test_what_the_api_does_to_a_channel_the_webhook_obeys(running: Running) -> None:
    channel = await channel_via_api(running)
    assert channel["active"], channel["checks"]
    url = channel["webhook_url"]
    assert (await running.webhook(url))[0] == 200

    assert (await running.call("POST", f"/channels/{channel['id']}/deactivate"))[1]["active"] is False
    # ingress caches channels for a moment; a GET on the URL reads afresh (as after TTL_S).
    assert (await running.webhook(url, "GET"))[1]["active"] is False
    status, answer = await running.webhook(url)
    assert (status, answer["error"]) == (409, "channel_inactive")

    status, activated = await running.call("POST", f"/channels/{channel['id']}/activate")
    assert (status, activated["active"]) == (200, True)
    assert (await running.webhook(url))[0] == 200

    status, rotated = await running.call("POST", f"/channels/{channel['id']}/rotate-secret")
    assert status == 200
    new_url = rotated["webhook_url"]
    assert new_url != url
    assert (await running.webhook(url, "GET"))[0] == 404
    status, answer = await running.webhook(url)
    assert (status, answer["error"]) == (404, "not_found")
    assert (await running.webhook(new_url))[0] == 200

    assert (await running.call("DELETE", f"/channels/{channel['id']}"))[0] == 200
    assert (await running.webhook(new_url, "GET"))[0] == 404
    status, answer = await running.webhook(new_url)
    assert (status, answer["error"]) == (404, "not_found")


async def test_the_webhook_check_fails_when_ingress_does_not_serve_the_url(
    admin_settings: Settings, db: Any, sandbox: tuple[SandboxState, str]
) -> None:
    # No ingress at PUBLIC_BASE_URL.
    service = ServiceTask("admin", serve_admin, admin_settings)
    await service.wait_ready()
    try:
        async with aiohttp.ClientSession() as session:
            channel = await channel_via_api(Running(admin_settings, sandbox[0], sandbox[1], session))
    finally:
        await service.stop()
    assert channel["active"] is False
    failed = {c["name"]: c["detail"] for c in channel["checks"] if not c["passed"]}
    assert failed == {"webhook": "the webhook URL did not answer: is ingress running at PUBLIC_BASE_URL?"}


async def bury(
    broker: aio_pika.abc.AbstractRobustConnection, settings: Settings, letters: list[tuple[str, str, int]]
) -> None:
    """Put messages into the dead-letter queues as a consumer would: (stage, id, partition)."""
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions, settings.amqp_queue_type)
    async with broker.channel() as channel:
        await declare_topology(channel, topology)
        for stage_name, message_id, partition in letters:
            stage = topology.inbound if stage_name == "inbound" else topology.outbound
            body = encoder.encode(
                SendText(
                    action_id=message_id, channel_id=1, chat_id="77", seq=1, created_at=time.time(), text="hi"
                )
            )
            exchange = await channel.get_exchange(stage.dead)
            await exchange.publish(
                aio_pika.Message(
                    body,
                    message_id=message_id,
                    content_type="application/json",
                    headers={
                        "x-error": "Omnidesk answered 403 staff_has_not_access",
                        "x-attempt": 3,
                        "x-dead-at": 1_700_000_000.0,
                    },
                ),
                routing_key=stage.routing_key(partition),
            )


async def queued(
    broker: aio_pika.abc.AbstractRobustConnection, queue_name: str
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    async with broker.channel() as channel:
        return await take_all(channel, queue_name)


async def test_dead_letters_list_and_replay(running: Running, broker: Any) -> None:
    settings = running.settings
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions, settings.amqp_queue_type)
    await bury(broker, settings, [("outbound", "o-1", 1), ("outbound", "o-2", 2), ("inbound", "i-1", 3)])

    status, listed = await running.call("GET", "/dead-letters")
    assert status == 200
    assert sorted(d["id"] for d in listed["items"]) == ["i-1", "o-1", "o-2"]
    letter = next(d for d in listed["items"] if d["id"] == "o-1")
    assert (letter["stage"], letter["chat_id"], letter["kind"], letter["attempts"], letter["dead_at"]) == (
        "outbound",
        "77",
        "outbound.text.v1",
        3,
        "2023-11-14T22:13:20Z",
    )
    assert letter["error"] == "Omnidesk answered 403 staff_has_not_access"
    status, outbound = await running.call("GET", "/dead-letters?stage=outbound&limit=1")
    assert ([d["id"] for d in outbound["items"]], outbound["total"], outbound["next_offset"]) == (
        ["o-1"],
        2,
        1,
    )
    # Listing takes nothing away.
    assert (await running.call("GET", "/dead-letters"))[1]["total"] == 3

    status, replayed = await running.call("POST", "/dead-letters/replay", {"ids": ["o-2", "nope"]})
    assert status == 200
    assert ([d["id"] for d in replayed["replayed"]], replayed["missing"]) == (["o-2"], ["nope"])
    again = await queued(broker, topology.outbound.partition_queue(2))
    assert [m.message_id for m in again] == ["o-2"]
    assert again[0].headers["x-redrive"] is True
    assert "x-error" not in again[0].headers

    status, rest = await running.call("POST", "/dead-letters/replay", {"all": True, "stage": "inbound"})
    assert [d["id"] for d in rest["replayed"]] == ["i-1"]
    assert [m.message_id for m in await queued(broker, topology.inbound.partition_queue(3))] == ["i-1"]
    assert [d["id"] for d in (await running.call("GET", "/dead-letters"))[1]["items"]] == ["o-1"]


async def test_a_hand_transfer_does_what_the_transfer_slot_does_and_resume_brings_the_bot_back(
    admin_settings: Settings, broker: Any, db: Any, sandbox: tuple[SandboxState, str]
) -> None:
    state, url = sandbox
    services = [
        ServiceTask(name, serve, admin_settings)
        for name, serve in (
            ("ingress", serve_ingress),
            ("dialog", serve_dialog),
            ("egress", serve_egress),
            ("admin", serve_admin),
        )
    ]
    for service in services:
        await service.wait_ready()
    try:
        channel = await setup_channel(admin_settings, state, url)
        # The seed's rules fire whatever the labels: omnibot itself must keep quiet for a human.
        await add_rules(url, channel["webhook_url"], require_label=False)
        case = (await customer_says(url, "Привет"))["case_id"]
        await wait_bot_messages(state, case, 2)
        assert state.bot_label_id in state.case(case).labels

        async with aiohttp.ClientSession() as session:
            running = Running(admin_settings, state, url, session)
            chat = f"/channels/{channel['id']}/chats/{case}"
            counted = handoff_counts()
            status, transferred = await running.call("POST", f"{chat}/transfer")
            assert (status, transferred["owner"]) == (200, "operator")
            # Counted by the admin process, once: asking again changes nothing.
            assert (await running.call("POST", f"{chat}/transfer"))[0] == 200
            assert handoff_counts() == {**counted, "manual": counted["manual"] + 1}
            # egress left the operator a note and took the bot label off, as for the transfer slot.
            await state.wait_for(
                lambda s: bool(s.notes(case)) and s.bot_label_id not in s.case(case).labels, 10
            )
            assert "an administrator handed it over" in state.notes(case)[0].content
            assert "Привет" in state.notes(case)[0].content

            # The customer writes: the words are kept, the bot stays silent.
            await customer_says(url, "Алло?", case_id=case)

            async def heard() -> bool:
                _, shown = await running.call("GET", chat)
                return any(line["text"] == "Алло?" for line in shown["transcript"])

            await eventually(heard, what="the message reaching dialog")
            assert len(bot_texts(state, case)) == 2
            assert (await running.call("GET", chat))[1]["owner"] == "operator"

            status, resumed = await running.call("POST", f"{chat}/resume")
            assert (status, resumed["owner"]) == (200, "bot")
            assert (await running.call("POST", f"{chat}/resume"))[0] == 200
            assert handoff_counts() == {
                **counted,
                "manual": counted["manual"] + 1,
                "returned": counted["returned"] + 1,
            }
            await customer_says(url, "Снова я", case_id=case)
            # A fresh session: the agent starts again from its first slot.
            texts = await wait_bot_messages(state, case, 4)
            assert texts[2:] == texts[:2]
    finally:
        for service in reversed(services):
            await service.stop()
