"""Chaos: a steady stream of customer messages over many chats while the system is hurt.

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

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import pytest

from tests.chaos.cluster import (
    Cluster,
    kill_dialog_replica,
    kill_egress_replica_mid_delivery,
    omnidesk_outage,
    restart_broker,
    restart_database,
)
from tests.chaos.stream import TALLIES, Chat, CustomerStream, Tally, reckon, render_table, wait_drained

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHATS = 20
PACE_S = 0.3  # each chat's next message about this long after the previous one was accepted
LEAD_S = 3.0  # the stream runs this long before the fault
# After the fault everything must have arrived within this. After a long Omnidesk outage the
# retries have backed off to their 30 s tiers (egress retries, then the chat's deferred later
# replies, one after the other), so recovery then takes 25-65 s here: that phase gets more time.
DRAIN_TIMEOUT_S = 30.0
SLOW_DRAIN_TIMEOUT_S = 120.0

Fault = Callable[[Cluster], Awaitable[str]]
_chat_numbers = itertools.count(1)


async def run_phase(
    cluster: Cluster, name: str, fault: Fault, drain_timeout_s: float = DRAIN_TIMEOUT_S
) -> Tally:
    chats = [Chat(next(_chat_numbers)) for _ in range(CHATS)]
    stream = CustomerStream(cluster.http, cluster.sandbox, cluster.webhook_url, chats, PACE_S)
    evidence_before = cluster.evidence()
    stop = asyncio.Event()
    streaming = asyncio.create_task(stream.run(stop))
    try:
        await asyncio.sleep(LEAD_S)  # deliberate: the stream is flowing when the fault hits
        note = await fault(cluster)
        fault_end = time.monotonic()
    finally:
        stop.set()  # every chat finishes the message it is sending (until accepted), then stops
        await streaming
    outcomes, drained_at = await wait_drained(cluster.sandbox, chats, drain_timeout_s)
    answers = ", ".join(f"{k}×{v}" for k, v in sorted(stream.answers.items()))
    evidence = ", ".join(f"{k} ×{v}" for k, v in sorted((cluster.evidence() - evidence_before).items()))
    tally = reckon(
        name,
        outcomes,
        fault_end,
        drained_at,
        f"{note}; ingress answered {answers}; logged: {evidence or '-'}",
    )
    TALLIES.append(tally)
    print(f"\n{render_table([tally])}\n{tally.note}")
    return tally


def check(tally: Tally, cluster: Cluster) -> None:
    assert tally.ok, (
        f"{tally.fault}: {tally.expected - tally.delivered} replies lost, {tally.duplicates} duplicates, "
        f"{tally.out_of_order} out of order, {tally.unexpected} unexpected, "
        f"recovery {tally.recovery_s}\n" + "\n".join(tally.problems[:10]) + f"\n\n{cluster.logs()}"
    )


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


# Last: a broker restart disturbs every connection, so it comes after the others.
@pytest.mark.timeout(150)
async def test_rabbitmq_restarted(cluster: Cluster) -> None:
    check(await run_phase(cluster, "RabbitMQ stop_app/start_app", restart_broker), cluster)
