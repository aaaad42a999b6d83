"""Chaos on one RabbitMQ node (the suite's own): a steady stream of customer messages over many
chats while the system is hurt.

One cluster of real processes (see cluster.py) serves every phase; each phase streams messages
over fresh chats, does one fault in the middle of the stream, stops the stream when the fault is
over, waits for the backlog to drain, and then demands that every customer message got exactly the
replies its agent prescribes, once each, in order, per chat. Each phase adds a row to the table
printed at the end of the run (fault, messages sent, replies expected, delivered, duplicates, out
of order, recovery time: from the end of the fault until everything was delivered).

The phases share the processes on purpose: a replacement started in one phase is the replica the
next phases run on, and a fault that leaves the cluster damaged shows in the phases after it.
"""

from __future__ import annotations

import pytest

from tests.chaos.cluster import (
    Cluster,
    blackhole_dialog_from_mongodb,
    kill_dialog_replica,
    kill_egress_replica_mid_delivery,
    omnidesk_outage,
    restart_broker,
    restart_database,
)
from tests.chaos.phase import SLOW_DRAIN_TIMEOUT_S, check, run_phase

pytestmark = pytest.mark.asyncio(loop_scope="module")
NODES = 1  # the module's own RabbitMQ node (conftest.py)
MONGO_PROXIES = True  # each dialog and egress replica reaches MongoDB through a proxy of its own


@pytest.mark.timeout(180)  # includes starting the cluster
async def test_dialog_replica_killed_mid_turn(cluster: Cluster) -> None:
    check(await run_phase(cluster, "dialog replica SIGKILL", kill_dialog_replica), cluster)


@pytest.mark.timeout(150)
async def test_egress_replica_killed_mid_delivery(cluster: Cluster) -> None:
    check(await run_phase(cluster, "egress replica SIGKILL", kill_egress_replica_mid_delivery), cluster)


@pytest.mark.timeout(150)
async def test_database_restarted(cluster: Cluster) -> None:
    check(await run_phase(cluster, "MongoDB server restart", restart_database), cluster)


@pytest.mark.timeout(210)
async def test_omnidesk_down_for_20_seconds(cluster: Cluster) -> None:
    tally = await run_phase(cluster, "Omnidesk 503 for 20 s", omnidesk_outage, SLOW_DRAIN_TIMEOUT_S)
    check(tally, cluster)


@pytest.mark.timeout(150)
async def test_dialog_replica_cut_off_from_mongodb(cluster: Cluster) -> None:
    tally = await run_phase(cluster, "dialog cut off from MongoDB", blackhole_dialog_from_mongodb)
    check(tally, cluster)


# Last: a broker restart disturbs every connection, so it comes after the others.
@pytest.mark.timeout(150)
async def test_rabbitmq_restarted(cluster: Cluster) -> None:
    check(await run_phase(cluster, "RabbitMQ stop_app/start_app", restart_broker), cluster)
