"""`omnibot queues migrate` on a real broker: a namespace declared with classic queues (as earlier
releases did), holding messages in a partition, a delay tier and the dead letters, moved over to
quorum queues with every message where it was, in order, with its headers and routing key."""

from __future__ import annotations

from typing import Any

import aio_pika
import pytest

from omnibot.launcher.queues import HOLDING_SUFFIX, MigrationRefused, migrate_queues
from omnibot.shared.deadletters import list_dead
from omnibot.shared.settings import Settings
from omnibot.shared.topology import RETRY_TIERS_MS, Topology, TopologyMismatch, declare_topology
from tests.conftest import take_all

pytestmark = pytest.mark.timeout(90)


async def publish(
    channel: aio_pika.abc.AbstractChannel, exchange: str, key: str, ids: list[str], **headers: Any
) -> None:
    target = await channel.get_exchange(exchange, ensure=False)
    for message_id in ids:
        message = aio_pika.Message(
            b"{}", message_id=message_id, headers={"chat_key": "1:7", **headers}, delivery_mode=2
        )
        await target.publish(message, routing_key=key)


async def ready(channel: aio_pika.abc.AbstractChannel, name: str) -> int:
    queue = await channel.declare_queue(name, passive=True)
    return queue.declaration_result.message_count or 0


async def test_classic_queues_move_over_to_quorum_queues_with_their_messages(
    settings: Settings, broker: Any
) -> None:
    classic = Topology.build(settings.amqp_namespace, settings.chat_partitions, "classic")
    quorum = Topology.build(settings.amqp_namespace, settings.chat_partitions)
    stage = classic.inbound
    longest = stage.retry_exchange(RETRY_TIERS_MS[-1])  # its messages wait minutes: still there
    async with broker.channel(publisher_confirms=True) as channel:
        await declare_topology(channel, classic)
        await publish(channel, stage.name, stage.routing_key(1), [f"m{i}" for i in range(50)])
        await publish(channel, longest, stage.routing_key(2), ["retry-1"], **{"x-attempt": 2})
        await publish(channel, stage.dead, stage.routing_key(3), ["dead-1"], **{"x-error": "it broke"})
    # The new release refuses to start on them, and says what to do.
    async with broker.channel() as channel:
        with pytest.raises(TopologyMismatch, match="omnibot queues migrate"):
            await declare_topology(channel, quorum)

    report = await migrate_queues(broker, quorum)

    assert report.migrated[stage.partition_queue(1)] == 50
    assert report.migrated[longest] == 1
    assert report.migrated[stage.dead] == 1
    assert len(report.migrated) == len(quorum.queues)  # every queue was classic
    async with broker.channel() as channel:
        await declare_topology(channel, quorum)  # quorum arguments now match
        assert await ready(channel, longest) == 1
        messages = await take_all(channel, stage.partition_queue(1))
    assert [m.message_id for m in messages] == [f"m{i}" for i in range(50)]
    assert {m.routing_key for m in messages} == {stage.routing_key(1)}
    assert all(m.headers["chat_key"] == "1:7" and "x-migrated-routing-key" not in m.headers for m in messages)
    [dead] = await list_dead(broker, quorum, ["inbound"])
    assert (dead.id, dead.error) == ("dead-1", "it broke")
    # No holding queue is left behind, and a second run has nothing to do.
    async with broker.channel() as channel:
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await channel.declare_queue(stage.dead + HOLDING_SUFFIX, passive=True)
    again = await migrate_queues(broker, quorum)
    assert (again.migrated, again.resumed, len(again.unchanged)) == ({}, {}, len(quorum.queues))


async def test_a_queue_with_consumers_is_not_touched(settings: Settings, broker: Any) -> None:
    classic = Topology.build(settings.amqp_namespace, settings.chat_partitions, "classic")
    async with broker.channel() as channel:
        await declare_topology(channel, classic)
        queue = await channel.get_queue(classic.outbound.partition_queue(0))

        async def consumer(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()

        await queue.consume(consumer)
        with pytest.raises(MigrationRefused, match="stop dialog and egress"):
            await migrate_queues(broker, Topology.build(settings.amqp_namespace, settings.chat_partitions))
