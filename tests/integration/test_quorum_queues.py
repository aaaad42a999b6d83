"""The broker side of issue 14 on the machine's RabbitMQ: every queue a quorum queue, a message
that keeps coming back dead-lettered with its reason, and a connection that fails over between
the URLs of `AMQP_URL` when its path to one node is cut."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import aio_pika
import pytest

from omnibot.shared import amqp
from omnibot.shared.amqp import Publisher, delivery_count_of
from omnibot.shared.deadletters import list_dead, replay_dead
from omnibot.shared.settings import Settings
from omnibot.shared.topology import (
    DELIVERY_COUNT_HEADER,
    DELIVERY_LIMIT,
    Topology,
    TopologyMismatch,
    declare_topology,
)
from tests.tcpproxy import proxied

pytestmark = pytest.mark.timeout(60)


def queue_types(prefix: str) -> dict[str, str]:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "type", "--no-table-headers"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    pairs = (line.split("\t") for line in out.splitlines() if line.startswith(prefix))
    return {pair[0]: pair[1] for pair in pairs}


async def test_every_queue_is_a_quorum_queue(settings: Settings, broker: Any) -> None:
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions)
    async with broker.channel() as channel:
        await declare_topology(channel, topology)
        await declare_topology(channel, topology)  # idempotent
    found = await asyncio.to_thread(queue_types, settings.amqp_namespace + ".")
    assert found == dict.fromkeys(topology.queues, "quorum")
    # A classic declaration of the same names is refused with a hint, not a bare channel error.
    classic = Topology.build(settings.amqp_namespace, settings.chat_partitions, "classic")
    async with broker.channel() as channel:
        with pytest.raises(TopologyMismatch, match="omnibot queues migrate"):
            await declare_topology(channel, classic)


async def test_a_message_given_back_again_and_again_is_dead_lettered_with_the_reason(
    settings: Settings, broker: Any
) -> None:
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions)
    stage = topology.inbound
    async with broker.channel() as channel:
        await declare_topology(channel, topology)
    publisher = await Publisher.open(broker, stage)
    await publisher.publish("7:poison", b'{"type": "x"}', message_id="poison-1")
    counts: list[int] = []
    done = asyncio.Event()
    async with broker.channel() as channel:
        queue = await channel.get_queue(stage.partition_queue(int(stage.route("7:poison")[1:])))

        async def crash(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            # What a consumer that dies with the message amounts to for the broker: it comes back.
            counts.append(delivery_count_of(message))
            await message.nack(requeue=True)
            if len(counts) == DELIVERY_LIMIT + 1:
                done.set()

        tag = await queue.consume(crash)
        await asyncio.wait_for(done.wait(), 30)
        await queue.cancel(tag)
    await publisher.close()
    # Quorum queues count the deliveries in a header from the first redelivery on.
    assert counts == list(range(DELIVERY_LIMIT + 1))

    async def dead() -> list[Any]:
        return await list_dead(broker, topology, ["inbound"])

    letters = await dead()
    for _ in range(50):
        if letters:
            break
        await asyncio.sleep(0.1)  # the broker dead-letters asynchronously; nothing to wait on
        letters = await dead()
    assert [d.id for d in letters] == ["poison-1"]
    assert letters[0].error.startswith(f"delivery limit reached in {queue.name}")
    assert letters[0].attempts == DELIVERY_LIMIT + 1
    # Re-driven, it starts afresh: no stale delivery count or death record of the old queue.
    await replay_dead(broker, topology, {"poison-1"}, ["inbound"])
    async with broker.channel() as channel:
        queue = await channel.get_queue(queue.name)
        async with queue.iterator() as messages:
            async for message in messages:
                assert DELIVERY_COUNT_HEADER not in (message.headers or {})
                assert "x-death" not in (message.headers or {})
                await message.ack()
                break


async def test_amqp_url_with_several_nodes_fails_over_when_one_path_is_cut(settings: Settings) -> None:
    async with proxied("127.0.0.1", 5672) as first, proxied("127.0.0.1", 5672) as second:
        base = settings.amqp_url.rstrip("/").rsplit("@", 1)[0]
        url = f"{base}@127.0.0.1:{first.port}/,{base}@127.0.0.1:{second.port}/"
        connection = await amqp.connect(url, name="failover-test")
        received: asyncio.Queue[bytes] = asyncio.Queue()
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(
                f"{settings.amqp_namespace}.failover",
                durable=True,
                arguments={"x-queue-type": "quorum"},
            )

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                received.put_nowait(message.body)
                await message.ack()

            await queue.consume(on_message)
            sender = await aio_pika.connect_robust(settings.amqp_url)
            async with sender:
                out = await sender.channel()
                await out.default_exchange.publish(aio_pika.Message(b"before"), routing_key=queue.name)
                assert await asyncio.wait_for(received.get(), 10) == b"before"
                assert (first.live, second.live) == (1, 0)

                reconnected = asyncio.Event()
                connection.reconnect_callbacks.add(lambda *_: reconnected.set())
                first.cut()  # the node behind the first URL is gone for this client
                await asyncio.wait_for(reconnected.wait(), 20)
                assert second.live == 1
                await out.default_exchange.publish(aio_pika.Message(b"after"), routing_key=queue.name)
                # The consumer was restored on the connection through the second URL ("before"
                # may come again first: its ack may have been lost in the cut).
                async with asyncio.timeout(20):
                    while (body := await received.get()) != b"after":
                        assert body == b"before"
                assert first.live == 0
                await out.queue_delete(queue.name)
        finally:
            await connection.close()


async def test_the_first_answering_url_wins_at_start(settings: Settings) -> None:
    async with proxied("127.0.0.1", 5672) as gone, proxied("127.0.0.1", 5672) as alive:
        gone.cut()
        base = settings.amqp_url.rstrip("/").rsplit("@", 1)[0]
        connection = await amqp.connect(
            f"{base}@127.0.0.1:{gone.port}/,{base}@127.0.0.1:{alive.port}/", name="failover-start"
        )
        try:
            assert alive.live == 1
        finally:
            await connection.close()
