"""How many messages wait in omnibot's queues, read with AMQP passive declares.

No management plugin is needed: a passive `queue.declare` answers the queue's ready-message count.
A declare of a missing queue closes the channel, so every read uses a channel of its own. Workers
sample their stage for the metrics (`omnibot_queue_messages`, `omnibot_dead_letters`); `omnibot
status` reads both stages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aio_pika
import msgspec
from aio_pika.abc import AbstractRobustConnection

from omnibot.shared import metrics
from omnibot.shared.topology import RETRY_TIERS_MS, Stage

log = logging.getLogger(__name__)


class StageDepths(msgspec.Struct, kw_only=True, frozen=True):
    """Ready messages of one stage: per partition, in its retry tiers (summed), dead letters."""

    stage: str
    partitions: dict[int, int]
    retrying: int
    dead: int

    @property
    def queued(self) -> int:
        return sum(self.partitions.values())


async def read_depths(connection: AbstractRobustConnection, stage: Stage) -> StageDepths:
    channel = await connection.channel()
    try:
        partitions = {}
        for partition in range(stage.partitions):
            partitions[partition] = await _count(channel, stage.partition_queue(partition))
        retrying = 0
        for tier in RETRY_TIERS_MS:
            retrying += await _count(channel, stage.retry_exchange(tier))
        dead = await _count(channel, stage.dead)
    finally:
        if not channel.is_closed:
            await channel.close()
    return StageDepths(stage=stage.name, partitions=partitions, retrying=retrying, dead=dead)


async def _count(channel: aio_pika.abc.AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    result = declared.declaration_result
    return int(result.message_count or 0)


def record(depths: StageDepths) -> None:
    counts = {f"{depths.stage}.p{p}": n for p, n in depths.partitions.items()}
    counts[f"{depths.stage}.retry"] = depths.retrying
    counts[f"{depths.stage}.dead"] = depths.dead
    metrics.record_queue_depths(counts, {depths.stage: depths.dead})


async def sample_depths(
    connection: AbstractRobustConnection, stage: Stage, stop: asyncio.Event, *, every_s: float = 10.0
) -> None:
    """Keep the queue gauges of a stage fresh until `stop` (a worker runs this beside its work).
    With metrics off (METRICS_ENABLED=false) there is nothing to keep fresh: no reads at all."""
    if not metrics.enabled():
        return
    while not stop.is_set():
        try:
            record(await read_depths(connection, stage))
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError, TimeoutError) as exc:
            log.debug("cannot read queue depths: %s", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
