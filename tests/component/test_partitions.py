"""Partition leases between replicas, against a real MongoDB-protocol server, with a test clock."""

from __future__ import annotations

from typing import Any

import pytest

from omnibot.shared.partitions import PartitionBalancer, PartitionLeases


class FakeConsumer:
    def __init__(self) -> None:
        self.partitions: set[int] = set()
        self.log: list[tuple[str, int]] = []

    async def add_partition(self, partition: int) -> None:
        self.partitions.add(partition)
        self.log.append(("add", partition))

    async def remove_partition(self, partition: int, timeout_s: float) -> None:
        self.partitions.discard(partition)
        self.log.append(("remove", partition))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def replica(db: Any, clock: Clock, name: str, partitions: int = 8) -> tuple[PartitionBalancer, FakeConsumer]:
    consumer = FakeConsumer()
    leases = PartitionLeases(db, "chat.inbound", partitions, member_id=name, clock=clock)
    return PartitionBalancer(leases, consumer, clock=clock), consumer


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_lone_replica_takes_every_partition(db: Any, clock: Clock) -> None:
    balancer, consumer = replica(db, clock, "a")
    await balancer.rebalance()
    assert consumer.partitions == set(range(8))
    assert balancer.balanced.is_set()


async def test_a_second_replica_gets_its_share_only_after_the_first_hands_it_over(
    db: Any, clock: Clock
) -> None:
    first, a = replica(db, clock, "a")
    second, b = replica(db, clock, "b")
    await first.rebalance()
    await second.rebalance()  # b knows its share, but a still holds the leases: b takes nothing yet
    assert b.partitions == set()
    await first.rebalance()  # a sees b, hands b's share over (drained, then released)
    await second.rebalance()
    assert a.partitions | b.partitions == set(range(8))
    assert not a.partitions & b.partitions
    assert b.partitions
    # a removed each partition before b added it: never two owners at once.
    for partition in b.partitions:
        assert ("remove", partition) in a.log


async def test_a_replica_that_leaves_hands_everything_over_at_once(db: Any, clock: Clock) -> None:
    first, a = replica(db, clock, "a")
    second, b = replica(db, clock, "b")
    for _ in range(2):
        await first.rebalance()
        await second.rebalance()
    for partition in list(a.partitions):
        await a.remove_partition(partition, 1)
    await first.leave()
    await second.rebalance()
    assert b.partitions == set(range(8))


async def test_a_dead_replicas_partitions_are_taken_after_its_leases_expire(db: Any, clock: Clock) -> None:
    first, a = replica(db, clock, "a")
    second, b = replica(db, clock, "b")
    for _ in range(2):
        await first.rebalance()
        await second.rebalance()
    held_by_a = set(a.partitions)
    assert held_by_a
    clock.now += 5  # a stops beating (killed): its membership lapses first...
    await second.rebalance()
    assert b.partitions.isdisjoint(held_by_a)  # ...but its leases still hold
    clock.now += 2  # past lease_s since a's last renewal
    await second.rebalance()
    assert b.partitions == set(range(8))


async def test_a_replica_that_lost_a_lease_stops_that_partition(db: Any, clock: Clock) -> None:
    first, a = replica(db, clock, "a")
    await first.rebalance()
    await db.partition_leases.update_one({"_id": "chat.inbound:3"}, {"$set": {"owner": "intruder"}})
    await first.rebalance()
    assert ("remove", 3) in a.log
