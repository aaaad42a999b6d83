"""`omnibot queues migrate`: move a deployment's classic queues over to quorum queues, losing nothing.

A queue's type cannot be changed in place: it must be deleted and declared again, and deleting it
would delete its messages. So, for every queue of the topology that exists with other arguments:
1. drain it into a holding queue `<queue>.migrating` (a quorum queue): each message is published
   there, confirmed by the broker, and only then acknowledged in the old queue, its original
   routing key kept in a header;
2. delete the old queue (only if empty), and declare the topology as this release wants it;
3. re-drive the holding queue into the new queue through the queue's own exchange, with the
   original routing key (so a partition's messages keep their partition, in their order, and a
   dead letter or a waiting retry stays what it was), confirmed, then delete the holding queue.
Every step is at-least-once and the command can be run again after an interruption: a queue that is
already a quorum queue only gets its holding queue, if one is left, re-driven. It refuses to touch
a queue that has consumers: stop dialog and egress first (and ingress, so that nothing is
published meanwhile); the procedure is in the README ("RabbitMQ queues").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from omnibot.launcher.exits import EXIT_OK, EXIT_REFUSED
from omnibot.shared import amqp
from omnibot.shared.settings import Settings
from omnibot.shared.settle import persistent_copy
from omnibot.shared.topology import (
    RETRY_TIERS_MS,
    QueueKind,
    Stage,
    Topology,
    declare_topology,
    queue_arguments,
)

log = logging.getLogger(__name__)

HOLDING_SUFFIX = ".migrating"
ROUTING_KEY_HEADER = "x-migrated-routing-key"
MOVE_TIMEOUT_S = 30.0  # for one message to arrive from the queue being drained


class MigrationRefused(RuntimeError):
    """Something makes moving a queue unsafe now (it has consumers); nothing was changed for it."""


@dataclass(frozen=True)
class QueueSpec:
    name: str
    kind: QueueKind
    stage: Stage
    tier_ms: int = 0

    @property
    def holding(self) -> str:
        return self.name + HOLDING_SUFFIX

    @property
    def exchange(self) -> str:
        """Where a message of this queue is published to land in it (and only in it)."""
        if self.kind == "partition":
            return self.stage.name
        if self.kind == "dead":
            return self.stage.dead
        return self.stage.retry_exchange(self.tier_ms)

    def arguments(self, topology: Topology) -> dict[str, Any]:
        return queue_arguments(self.kind, self.stage, topology.queue_type, tier_ms=self.tier_ms)


@dataclass
class MigrationReport:
    migrated: dict[str, int] = field(default_factory=dict)  # queue -> messages moved over
    resumed: dict[str, int] = field(default_factory=dict)  # queue -> messages re-driven from a holding queue
    unchanged: list[str] = field(default_factory=list)


def queue_specs(topology: Topology) -> list[QueueSpec]:
    specs: list[QueueSpec] = []
    for stage in topology.stages:
        specs.append(QueueSpec(stage.dead, "dead", stage))
        specs += [QueueSpec(name, "partition", stage) for name in stage.partition_queues]
        specs += [QueueSpec(stage.retry_exchange(t), "retry", stage, t) for t in RETRY_TIERS_MS]
    return specs


async def _state(connection: AbstractRobustConnection, name: str, arguments: dict[str, Any]) -> str:
    """ "missing", "current" (declared with these arguments) or "other" (another type or arguments)."""
    async with connection.channel() as channel:
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return "missing"
    async with connection.channel() as channel:
        try:
            await channel.declare_queue(name, durable=True, arguments=arguments)
        except aio_pika.exceptions.ChannelPreconditionFailed:
            return "other"
    return "current"


async def _counts(connection: AbstractRobustConnection, name: str) -> tuple[int, int] | None:
    """(messages ready, consumers) of a queue, None if it does not exist."""
    async with connection.channel() as channel:
        try:
            queue = await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return None
        result = queue.declaration_result
        return result.message_count or 0, result.consumer_count or 0


async def _move(
    channel: AbstractChannel,
    source: str,
    count: int,
    target_exchange: str,
    routing_key: Any,
) -> int:
    """Move `count` messages from `source`: each published (confirmed) before it is acknowledged.
    `routing_key(message) -> (key, headers)` says where it goes."""
    if count == 0:
        return 0
    queue = await channel.get_queue(source, ensure=True)
    exchange = (
        channel.default_exchange
        if target_exchange == ""
        else await channel.get_exchange(target_exchange, ensure=False)
    )
    moved = 0
    async with queue.iterator() as messages:
        while moved < count:
            message: AbstractIncomingMessage = await asyncio.wait_for(messages.__anext__(), MOVE_TIMEOUT_S)
            key, headers = routing_key(message)
            await exchange.publish(persistent_copy(message, headers), routing_key=key, timeout=30)
            await message.ack()
            moved += 1
    return moved


async def migrate_queues(connection: AbstractRobustConnection, topology: Topology) -> MigrationReport:
    report = MigrationReport()
    specs = queue_specs(topology)
    to_move: list[QueueSpec] = []
    for spec in specs:
        state = await _state(connection, spec.name, spec.arguments(topology))
        if state == "other":
            counts = await _counts(connection, spec.name)
            if counts is not None and counts[1] > 0:
                raise MigrationRefused(
                    f"{spec.name} has {counts[1]} consumers: stop dialog and egress (and ingress) first"
                )
            to_move.append(spec)
        elif await _counts(connection, spec.holding) is None:
            report.unchanged.append(spec.name)
    async with connection.channel(publisher_confirms=True) as channel:
        # 1. Drain each old queue into its holding queue.
        for spec in to_move:
            await channel.declare_queue(spec.holding, durable=True, arguments={"x-queue-type": "quorum"})
            counts = await _counts(connection, spec.name)
            ready = counts[0] if counts else 0
            report.migrated[spec.name] = await _move(
                channel,
                spec.name,
                ready,
                "",
                lambda m, spec=spec: (
                    spec.holding,
                    {**(m.headers or {}), ROUTING_KEY_HEADER: m.routing_key or ""},
                ),
            )
            log.info("%s: %d messages held in %s", spec.name, report.migrated[spec.name], spec.holding)
        # 2. The old queues go (only when empty); the topology is declared as this release wants it.
        for spec in to_move:
            await channel.queue_delete(spec.name, if_empty=True)
    async with connection.channel() as channel:
        await declare_topology(channel, topology)
    # 3. Re-drive every holding queue left (this run's, or an interrupted run's) into its queue.
    async with connection.channel(publisher_confirms=True) as channel:
        for spec in specs:
            counts = await _counts(connection, spec.holding)
            if counts is None:
                continue
            moved = await _move(channel, spec.holding, counts[0], spec.exchange, _original)
            if spec.name not in report.migrated:
                report.resumed[spec.name] = moved
            # Quorum queues know no if-empty delete: check, then delete (only this command
            # publishes to a holding queue).
            left = await _counts(connection, spec.holding)
            if left is not None and left[0] > 0:
                raise MigrationRefused(f"{spec.holding} still holds {left[0]} messages: run again")
            await channel.queue_delete(spec.holding)
            log.info("%s: %d messages re-driven, now a %s queue", spec.name, moved, topology.queue_type)
    return report


def _original(message: AbstractIncomingMessage) -> tuple[str, dict[str, Any]]:
    headers = dict(message.headers or {})
    key = headers.pop(ROUTING_KEY_HEADER, message.routing_key or "")
    return str(key), headers


# --- the command -------------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    queues = sub.add_parser("queues", help="RabbitMQ queues: move classic queues to quorum queues")
    actions = queues.add_subparsers(dest="action", required=True)
    actions.add_parser(
        "migrate",
        help="drain, redeclare and re-drive every queue not yet of the wanted type (see the README)",
        description=__doc__.split("\n")[0] if __doc__ else None,
    )


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions, settings.amqp_queue_type)

    async def go() -> MigrationReport:
        connection = await amqp.connect(settings.amqp_url, name="omnibot-queues-migrate")
        try:
            return await migrate_queues(connection, topology)
        finally:
            await connection.close()

    try:
        report = asyncio.run(go())
    except MigrationRefused as exc:
        print(f"omnibot: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    for name, count in report.migrated.items():
        print(f"{name}: now a {topology.queue_type} queue, {count} messages moved over")
    for name, count in report.resumed.items():
        print(f"{name}: {count} messages re-driven from an interrupted migration")
    print(f"{len(report.unchanged)} queues already {topology.queue_type} queues")
    return EXIT_OK
