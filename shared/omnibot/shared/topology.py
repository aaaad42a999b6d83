"""Every RabbitMQ name omnibot uses, and the declaration of that topology.

Each stage (`chat.inbound`, `chat.outbound`) is owned by its producer and has:
- a direct exchange `<stage>` routing to `<stage>.p<N>` partition queues. The partition of a chat is
  a stable hash of its key, so all messages of one chat go to one queue, in publish order. Each
  partition queue is single-active-consumer: at most one consumer in the cluster receives from it,
  which keeps a chat's messages in order across replicas; a standby takes over when it dies.
- fixed delay tiers `<stage>.retry.<ms>`: fanout exchange + queue with a message TTL that
  dead-letters back into `<stage>` with the original routing key (so back into the same partition).
  Fixed tiers rather than per-message TTL, because per-message TTL only expires at the queue head.
- a dead-letter exchange and queue `<stage>.dead` for what must not be retried.

Every queue is a quorum queue (replicated over the RabbitMQ cluster's nodes, RabbitMQ's data-safe
queue type): a node lost loses nothing and stalls nothing that a majority of nodes still holds.
Partition queues carry a delivery limit: a message given back (its consumer died or nacked it)
more than `DELIVERY_LIMIT` times is dead-lettered by the broker with reason `delivery_limit`
instead of crashing replica after replica. Dead-lettering by the broker (delivery limit, retry
tiers expiring back into their stage) is at-least-once, which RabbitMQ allows only together with
`x-overflow: reject-publish`; no queue has a length limit, so that never rejects anything.
`QueueType` "classic" declares the queue type of earlier releases (benchmarks, and deployments
still to be migrated: `omnibot queues migrate`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

QueueType = Literal["quorum", "classic"]
QueueKind = Literal["dead", "partition", "retry"]

# How often the broker hands one message out before it dead-letters it. Every return counts (a
# consumer that died with it, a hand-over, a graceful stop giving it back): high enough that a
# few restarts and hand-overs never reach it, low enough that a message that kills its consumer
# stops doing so after a bounded number of crashes.
DELIVERY_LIMIT = 20
DELIVERY_COUNT_HEADER = "x-delivery-count"  # set by quorum queues on every redelivery

# Delay tiers for retries, in milliseconds. A wanted delay is rounded up to the next tier.
# Close together, so that rounding up never adds more than half the wanted delay.
RETRY_TIERS_MS: tuple[int, ...] = (
    250,
    375,
    500,
    750,
    1_000,
    1_500,
    2_000,
    3_000,
    4_000,
    6_000,
    8_000,
    12_000,
    16_000,
    24_000,
    32_000,
    48_000,
    64_000,
    96_000,
    128_000,
    192_000,
    288_000,
)


def partition_of(key: str, partitions: int) -> int:
    """Stable partition of a chat key (the same in every process and every release)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def retry_tier_ms(delay_s: float) -> int:
    wanted = max(0.0, delay_s) * 1000
    for tier in RETRY_TIERS_MS:
        if tier >= wanted:
            return tier
    return RETRY_TIERS_MS[-1]


def timer_tier_ms(delay_s: float) -> int:
    """The delay tier for one hop of a timer: the longest not beyond `delay_s` (the smallest for
    less), so a timer hops through the tiers until it is due and is never late by more than a tier
    rounding of its last hop. Timers (the agents' `on_timeout`) reuse the retry tiers of a stage."""
    wanted = max(0.0, delay_s) * 1000
    fitting = [tier for tier in RETRY_TIERS_MS if tier <= wanted]
    return fitting[-1] if fitting else RETRY_TIERS_MS[0]


@dataclass(frozen=True)
class Stage:
    """The names of one pipeline stage, e.g. `chat.inbound`."""

    name: str
    partitions: int

    def routing_key(self, partition: int) -> str:
        return f"p{partition}"

    def route(self, key: str) -> str:
        return self.routing_key(partition_of(key, self.partitions))

    def partition_queue(self, partition: int) -> str:
        return f"{self.name}.p{partition}"

    @property
    def partition_queues(self) -> list[str]:
        return [self.partition_queue(p) for p in range(self.partitions)]

    def retry_exchange(self, tier_ms: int) -> str:
        return f"{self.name}.retry.{tier_ms}"

    @property
    def dead(self) -> str:
        return f"{self.name}.dead"

    @property
    def queues(self) -> list[str]:
        """Every queue of the stage: its dead letters, its partitions, its delay tiers."""
        return [self.dead, *self.partition_queues, *(self.retry_exchange(t) for t in RETRY_TIERS_MS)]


class TopologyMismatch(RuntimeError):
    """A queue exists with other arguments (say, a classic queue of an earlier release)."""


def queue_arguments(
    kind: QueueKind, stage: Stage, queue_type: QueueType, *, tier_ms: int = 0
) -> dict[str, Any]:
    """The declaration arguments of one queue: pure, so tests and the migration can compare them."""
    args: dict[str, Any] = {}
    if kind == "partition":
        args = {"x-single-active-consumer": True, "x-dead-letter-exchange": stage.dead}
    elif kind == "retry":
        args = {"x-message-ttl": tier_ms, "x-dead-letter-exchange": stage.name}
    if queue_type == "classic":
        return args
    args["x-queue-type"] = "quorum"
    if kind == "partition":
        args["x-delivery-limit"] = DELIVERY_LIMIT
    if kind != "dead":
        args["x-dead-letter-strategy"] = "at-least-once"
        args["x-overflow"] = "reject-publish"
    return args


@dataclass(frozen=True)
class Topology:
    inbound: Stage
    outbound: Stage
    queue_type: QueueType = "quorum"

    @classmethod
    def build(cls, namespace: str, partitions: int, queue_type: QueueType = "quorum") -> Topology:
        prefix = f"{namespace}." if namespace else ""
        return cls(
            inbound=Stage(f"{prefix}chat.inbound", partitions),
            outbound=Stage(f"{prefix}chat.outbound", partitions),
            queue_type=queue_type,
        )

    @property
    def queues(self) -> list[str]:
        """Every durable queue of the topology, dead-letter queues first."""
        return [name for stage in self.stages for name in stage.queues]

    @property
    def stages(self) -> tuple[Stage, Stage]:
        return (self.inbound, self.outbound)


async def _declare_queue(
    channel: AbstractChannel, name: str, arguments: dict[str, Any]
) -> aio_pika.abc.AbstractQueue:
    try:
        return await channel.declare_queue(name, durable=True, arguments=arguments)
    except aio_pika.exceptions.ChannelPreconditionFailed as exc:
        # The broker closed the channel: the queue exists with other arguments, which no
        # declaration can change. Say what to do instead of a bare PRECONDITION_FAILED.
        raise TopologyMismatch(
            f"queue {name} exists with other arguments than this release declares "
            f"({arguments.get('x-queue-type', 'classic')} queue wanted): "
            "move it over with `omnibot queues migrate` (see the README)"
        ) from exc


async def declare_stage(
    channel: AbstractChannel, stage: Stage, queue_type: QueueType = "quorum"
) -> AbstractExchange:
    """Declare one stage idempotently; returns its main exchange."""
    main = await channel.declare_exchange(stage.name, aio_pika.ExchangeType.DIRECT, durable=True)
    dead = await channel.declare_exchange(stage.dead, aio_pika.ExchangeType.FANOUT, durable=True)
    dead_queue = await _declare_queue(channel, stage.dead, queue_arguments("dead", stage, queue_type))
    await dead_queue.bind(dead)
    for partition in range(stage.partitions):
        queue = await _declare_queue(
            channel, stage.partition_queue(partition), queue_arguments("partition", stage, queue_type)
        )
        await queue.bind(main, routing_key=stage.routing_key(partition))
    for tier in RETRY_TIERS_MS:
        retry = await channel.declare_exchange(
            stage.retry_exchange(tier), aio_pika.ExchangeType.FANOUT, durable=True
        )
        retry_queue = await _declare_queue(
            channel, stage.retry_exchange(tier), queue_arguments("retry", stage, queue_type, tier_ms=tier)
        )
        await retry_queue.bind(retry)
    return main


async def declare_topology(channel: AbstractChannel, topology: Topology) -> None:
    for stage in topology.stages:
        await declare_stage(channel, stage, topology.queue_type)


async def delete_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Remove every queue and exchange of a namespace (tests clean up after themselves)."""
    for stage in topology.stages:
        for queue in stage.queues:
            await channel.queue_delete(queue)
        for exchange in [stage.name, stage.dead, *(stage.retry_exchange(t) for t in RETRY_TIERS_MS)]:
            await channel.exchange_delete(exchange)
