"""The bare three-hop aio-pika pipeline, the reference for end-to-end throughput and latency."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import aio_pika

from bench.common import spawn, started
from bench.load import Burst, burst_of, paced_at, timed
from bench.sizes import CONCURRENCY
from omnibot.testkit.processes import ChildProcess


def worker(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "bench.pipeline_worker", name, *args]


class BarePipeline:
    """publish -> A -> hop -> B -> hop -> C -> sink, each hop and the sink its own process."""

    def __init__(self, amqp_url: str, log_dir: Path, prefetch: int = 64) -> None:
        self.amqp_url = amqp_url
        self.prefix = f"bench-bare-{uuid.uuid4().hex[:8]}"
        self.queues = [f"{self.prefix}.{q}" for q in "ABC"]
        self.log_dir = log_dir
        self.prefetch = prefetch
        self.processes: list[ChildProcess] = []
        self.arrived: dict[str, float] = {}
        self._changed = asyncio.Event()
        self._collector: asyncio.Task[None] | None = None
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        for name in self.queues:
            await self._channel.declare_queue(name, durable=True)
        a, b, c = self.queues
        p = str(self.prefetch)
        url = self.amqp_url
        self.processes = [
            spawn(
                "bare-hop1",
                worker("hop", "--amqp-url", url, "--source", a, "--target", b, "--prefetch", p),
                self.log_dir,
            ),
            spawn(
                "bare-hop2",
                worker("hop", "--amqp-url", url, "--source", b, "--target", c, "--prefetch", p),
                self.log_dir,
            ),
            spawn(
                "bare-sink", worker("sink", "--amqp-url", url, "--source", c, "--prefetch", p), self.log_dir
            ),
        ]
        await asyncio.gather(*(started(p) for p in self.processes))
        self._collector = asyncio.create_task(self._collect(self.processes[-1]))

    async def _collect(self, sink: ChildProcess) -> None:
        while line := await sink.next_line():
            tag, at = line.split(" ")
            self.arrived[tag] = float(at)
            self._changed.set()

    async def _wait_all(self, tags: Sequence[str], limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while not all(t in self.arrived for t in tags):
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))

    async def _publish(self, tag: str, body: bytes) -> None:
        assert self._channel is not None
        message = aio_pika.Message(
            body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=tag,
            content_type="application/json",
        )
        await self._channel.default_exchange.publish(message, routing_key=self.queues[0])

    async def burst(self, items: Sequence[tuple[str, bytes]]) -> Burst:
        sent = await burst_of(self._publish, items, CONCURRENCY)
        await self._wait_all([t for t, _ in items], 60 + len(items) / 50)
        return timed(sent, self.arrived)

    async def paced(self, items: Sequence[tuple[str, bytes]], rate: float) -> Burst:
        sent = await paced_at(self._publish, items, rate)
        await self._wait_all([t for t, _ in items], 60)
        return timed(sent, self.arrived)

    def pids(self) -> dict[str, list[int]]:
        return {p.name: [p.pid] for p in self.processes if p.popen is not None}

    async def close(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.processes))
        if self._collector is not None:
            self._collector.cancel()
        if self._channel is not None:
            for name in self.queues:
                with contextlib.suppress(Exception):
                    await self._channel.queue_delete(name)
        if self._connection is not None:
            await self._connection.close()
