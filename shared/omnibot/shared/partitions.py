"""Which replica consumes which partition: members, rendezvous assignment and leases in MongoDB.

Why: each partition queue must be consumed by one replica at a time (a chat's messages are handled
one after another, in order), and the partitions should spread over the replicas. RabbitMQ's
single-active-consumer alone guarantees the first but not the second (the replica that subscribed
first is active on every partition). So:
- every replica of a stage heartbeats a `members` document; those seen within `member_ttl_s` are
  the live members;
- each partition's target owner is chosen by rendezvous hashing over the live members, so every
  replica computes the same assignment, and adding or removing one moves only its share;
- a replica consumes a partition only while it holds that partition's lease (`partition_leases`,
  renewed every beat, expiring after `lease_s`). It hands a partition over by cancelling its
  consumer, finishing the work in progress, then releasing the lease; the new owner subscribes
  only once it has the lease, so the partition's next message is handled after the last one.
- a replica that cannot renew (MongoDB unreachable) stops consuming before its leases can expire,
  so no one else can hold them while it still works.
The queues stay single-active-consumer as a safety net: even if leases were wrong, RabbitMQ would
never deliver one partition to two consumers at once.

A replica that dies holding leases: RabbitMQ requeues its unacknowledged messages at once (its
connection closes), its member document goes stale after `member_ttl_s` and its leases expire after
`lease_s`; the survivors then take its partitions. Until then those partitions wait (recovery time
is about `lease_s`). Replicas are added or removed simply by starting or stopping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from omnibot.shared import metrics
from omnibot.shared.mongo import Document

log = logging.getLogger(__name__)


class PartitionConsumer(Protocol):
    @property
    def partitions(self) -> set[int]: ...

    async def add_partition(self, partition: int) -> None: ...

    async def remove_partition(self, partition: int, timeout_s: float) -> None: ...


def rendezvous_owner(stage: str, partition: int, members: list[str]) -> str:
    """The member with the highest hash for this partition: stable, and minimal moves on change."""

    def weight(member: str) -> int:
        digest = hashlib.blake2b(f"{stage}:{partition}:{member}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    return max(members, key=weight)


def assignment(stage: str, partitions: int, members: list[str], me: str) -> set[int]:
    if not members:
        return set()
    return {p for p in range(partitions) if rendezvous_owner(stage, p, members) == me}


class PartitionLeases:
    """This replica's membership and leases for one stage, kept in MongoDB."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        stage: str,
        partitions: int,
        *,
        member_id: str | None = None,
        lease_s: float = 6.0,
        member_ttl_s: float = 4.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._members = db.members
        self._leases = db.partition_leases
        self.stage = stage
        self.partitions = partitions
        self.me = member_id or f"{stage}:{uuid.uuid4().hex[:12]}"
        self.lease_s = lease_s
        self.member_ttl_s = member_ttl_s
        self._clock = clock

    def _lease_id(self, partition: int) -> str:
        return f"{self.stage}:{partition}"

    async def heartbeat(self) -> None:
        await self._members.update_one(
            {"_id": self.me}, {"$set": {"stage": self.stage, "seen_at": self._clock()}}, upsert=True
        )

    async def live_members(self) -> list[str]:
        since = self._clock() - self.member_ttl_s
        cursor = self._members.find({"stage": self.stage, "seen_at": {"$gte": since}}, {"_id": 1})
        members = sorted([str(doc["_id"]) async for doc in cursor])
        return members if self.me in members else sorted([*members, self.me])

    async def acquire(self, partition: int) -> bool:
        now = self._clock()
        try:
            doc = await self._leases.find_one_and_update(
                {"_id": self._lease_id(partition), "$or": [{"owner": self.me}, {"expires_at": {"$lt": now}}]},
                {"$set": {"owner": self.me, "expires_at": now + self.lease_s}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # held by someone else, not expired
            return False
        return doc is not None and doc.get("owner") == self.me

    async def renew(self, partitions: set[int]) -> set[int]:
        """Extend the leases held; returns those still ours."""
        if not partitions:
            return set()
        ids = [self._lease_id(p) for p in partitions]
        await self._leases.update_many(
            {"_id": {"$in": ids}, "owner": self.me}, {"$set": {"expires_at": self._clock() + self.lease_s}}
        )
        cursor = self._leases.find({"_id": {"$in": ids}, "owner": self.me}, {"_id": 1})
        return {int(str(doc["_id"]).rsplit(":", 1)[1]) async for doc in cursor}

    async def release(self, partition: int) -> None:
        await self._leases.update_one(
            {"_id": self._lease_id(partition), "owner": self.me}, {"$set": {"owner": None, "expires_at": 0}}
        )

    async def leave(self) -> None:
        await self._members.delete_one({"_id": self.me})


class PartitionBalancer:
    """Drives a consumer's partitions from the leases until stopped.

    Two loops, each every `beat_s`: the keeper heartbeats and renews the leases held (also those of
    partitions being drained, which can take longer than a lease lasts), and fences when it cannot;
    the balancer hands over and takes partitions as the assignment says. Every MongoDB call is
    time-boxed well inside the lease, so a hung database cannot keep this replica working
    partitions whose leases have run out.
    """

    def __init__(
        self,
        leases: PartitionLeases,
        consumer: PartitionConsumer,
        *,
        beat_s: float = 1.0,
        drain_timeout_s: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._leases = leases
        self._consumer = consumer
        self._beat_s = beat_s
        self._drain_timeout_s = drain_timeout_s
        self._clock = clock
        self._call_timeout_s = leases.lease_s / 4
        self._last_renewed = clock()
        self._held: set[int] = set()  # leases held: consumed partitions and those being drained
        self.balanced = asyncio.Event()  # set once this replica holds all it should

    async def rebalance(self) -> None:
        """One full round (keep, then balance): at start-up, and in tests."""
        await self.keep()
        await self.balance()

    async def run(self, stop: asyncio.Event) -> None:
        keeper = asyncio.create_task(self._every_beat(stop, self._keep_or_fence))
        try:
            await self._every_beat(stop, self._balance_logged)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _every_beat(self, stop: asyncio.Event, work: Callable[[], Awaitable[None]]) -> None:
        while not stop.is_set():
            await work()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._beat_s)

    async def keep(self) -> None:
        leases, consumer = self._leases, self._consumer
        async with asyncio.timeout(self._call_timeout_s):
            await leases.heartbeat()
            still = await leases.renew(self._held)
        self._last_renewed = self._clock()
        for partition in self._held - still:
            self._held.discard(partition)
            metrics.record_lease_change(leases.stage, "lost")
            if partition in consumer.partitions:
                log.warning("lost the lease of partition %d: stopping it", partition)
                await consumer.remove_partition(partition, self._drain_timeout_s)
        self._record()

    async def balance(self) -> None:
        leases, consumer = self._leases, self._consumer
        async with asyncio.timeout(self._call_timeout_s):
            members = await leases.live_members()
        target = assignment(leases.stage, leases.partitions, members, leases.me)
        for partition in consumer.partitions - target:
            await consumer.remove_partition(partition, self._drain_timeout_s)  # the keeper renews meanwhile
            async with asyncio.timeout(self._call_timeout_s):
                await leases.release(partition)
            self._held.discard(partition)
            metrics.record_lease_change(leases.stage, "released")
        for partition in sorted(target - consumer.partitions):
            async with asyncio.timeout(self._call_timeout_s):
                acquired = await leases.acquire(partition)
            if acquired:
                self._held.add(partition)
                await consumer.add_partition(partition)
                metrics.record_lease_change(leases.stage, "taken")
        self._record()
        if consumer.partitions == target:
            self.balanced.set()

    async def _keep_or_fence(self) -> None:
        try:
            await self.keep()
        except (PyMongoError, TimeoutError) as exc:
            log.warning("cannot renew partition leases: %s", type(exc).__name__)
            if self._clock() - self._last_renewed > self._leases.lease_s / 2:
                await self._fence()

    async def _balance_logged(self) -> None:
        try:
            await self.balance()
        except (PyMongoError, TimeoutError) as exc:
            log.warning("cannot balance partitions: %s", type(exc).__name__)

    async def _fence(self) -> None:
        # The leases could not be renewed for half their life: stop consuming before they expire,
        # so that no other replica ever works a partition while this one still does.
        for partition in list(self._consumer.partitions):
            log.warning("fencing partition %d: its lease cannot be renewed", partition)
            await self._consumer.remove_partition(partition, self._drain_timeout_s)
            metrics.record_lease_change(self._leases.stage, "fenced")
        self._record()

    def _record(self) -> None:
        metrics.record_partitions(self._leases.stage, len(self._consumer.partitions), self._leases.partitions)

    async def leave(self) -> None:
        """After the consumer stopped: give every lease back so the others take over at once."""
        with contextlib.suppress(PyMongoError, TimeoutError):
            async with asyncio.timeout(self._call_timeout_s * 4):
                for partition in range(self._leases.partitions):
                    await self._leases.release(partition)
                await self._leases.leave()
        self._record()
