"""One phase of a chaos run: a stream of customer messages over fresh chats, one fault in the
middle of it, the backlog drained, and the reckoning added as a row to the table."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

from tests.chaos.cluster import Cluster
from tests.chaos.stream import TALLIES, Chat, CustomerStream, Tally, reckon, render_table, wait_drained

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
