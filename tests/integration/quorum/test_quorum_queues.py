"""The broker side of issue 14, on a RabbitMQ node of its own (conftest.py says why): every queue
a quorum queue, a message that keeps coming back dead-lettered with its reason, and a connection
that fails over between the URLs of `AMQP_URL` when its path to one node is cut."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import pytest
from yarl import URL

from omnibot.shared import amqp
from omnibot.shared.amqp import Publisher, delivery_count_of
from omnibot.shared.deadletters import list_dead, replay_dead
from omnibot.shared.settings import Settings
from omnibot.shared.topology import (
    DELIVERY_COUNT_HEADER,
    DELIVERY_LIMIT,
    QueueKind,
    Topology,
    TopologyMismatch,
    declare_topology,
    queue_arguments,
)
from tests.tcpproxy import proxied

pytestmark = pytest.mark.timeout(60)


async def test_every_queue_is_a_quorum_queue(settings: Settings, broker: Any) -> None:
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions)
    async with broker.channel() as channel:
        await declare_topology(channel, topology)
        await declare_topology(channel, topology)  # idempotent
    # The broker compares x-queue-type on every declaration: the second declaration above went
    # through, so every queue is a quorum queue; the same arguments without it (a classic queue)
    # are refused for each kind of queue. (By AMQP alone: rabbitmqctl is slow on a busy broker.)
    stage = topology.outbound
    kinds: list[tuple[str, QueueKind, int]] = [
        (stage.dead, "dead", 0),
        (stage.partition_queue(0), "partition", 0),
        (stage.retry_exchange(250), "retry", 250),
    ]
    for name, kind, tier in kinds:
        async with broker.channel() as channel:
            with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed, match="inequivalent arg"):
                await channel.declare_queue(
                    name, durable=True, arguments=queue_arguments(kind, stage, "classic", tier_ms=tier)
                )
    # A classic declaration of the topology is refused with a hint, not a bare channel error.
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
    broker = URL(settings.amqp_url)
    host, port = broker.host or "127.0.0.1", broker.port or 5672
    async with proxied(host, port) as first, proxied(host, port) as second:
        url = f"{broker.with_port(first.port)},{broker.with_port(second.port)}"
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
    broker = URL(settings.amqp_url)
    host, port = broker.host or "127.0.0.1", broker.port or 5672
    async with proxied(host, port) as gone, proxied(host, port) as alive:
        gone.cut()
        connection = await amqp.connect(
            f"{broker.with_port(gone.port)},{broker.with_port(alive.port)}", name="failover-start"
        )
        try:
            assert alive.live == 1
        finally:
            await connection.close()
