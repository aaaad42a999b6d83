"""What quorum queues cost: the end-to-end pipeline on quorum queues against classic queues.

Run: `.venv/bin/python -m bench.queue_types [--quick] [--runs R]` from the repository root.

The pipeline benchmark's end-to-end burst (bench/sections.py `e2e`: webhooks into the real
ingress, dialog running the echo agent, egress posting to the sandbox; in-memory chat and delivery
stores, one dialog and one egress replica), once on deployments whose queues are classic
(`AMQP_QUEUE_TYPE=classic`) and once on quorum queues (the default), interleaved R times (classic,
then quorum), on the same broker: one node, so the figure is the cost of the quorum queue's log
and fsyncs, not of replication. Reports the median of each and their ratio (target: quorum at
least 70% of classic). Point AMQP_URL at the node to measure.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import aiohttp
import uvloop

from bench.common import mongo
from bench.deploy import Bench
from bench.sections import e2e, loadavg
from bench.sizes import CONCURRENCY, FULL, QUICK
from omnibot.testkit.sandbox import sandbox_process

TARGET = 0.70


async def main(quick: bool, runs: int) -> None:
    sizes = QUICK if quick else FULL
    log_dir = Path(tempfile.mkdtemp(prefix="omnibot-queue-types-bench-"))
    print(f"quorum against classic queues, median of {runs}; load {loadavg()}; logs in {log_dir}", flush=True)
    rates: dict[str, list[float]] = {"classic": [], "quorum": []}
    with mongo() as mongo_url:
        async with (
            sandbox_process(per_minute=10**9, log_dir=log_dir) as (sandbox_url, info),
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2)) as session,
        ):
            base = Bench(mongo_url, sandbox_url, info, sizes, 1, log_dir)
            await base.open_cases(session, sizes.chats)
            for run in range(runs):
                for queue_type in ("classic", "quorum"):
                    bench = dataclasses.replace(base, queue_type=queue_type)
                    figure = await e2e(
                        bench,
                        session,
                        None,
                        label=f"{queue_type} queues, run {run + 1}",
                        store="memory",
                        replicas=1,
                        chats=sizes.chats,
                        burst=sizes.burst,
                    )
                    rates[queue_type].append(figure.rate)
    classic, quorum = statistics.median(rates["classic"]), statistics.median(rates["quorum"])
    ratio = quorum / classic
    runs_of = {kind: ", ".join(f"{r:,.0f}" for r in values) for kind, values in rates.items()}
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(
        f"\nend to end, {sizes.burst} messages over {sizes.chats} chats, 1 dialog + 1 egress, "
        "in-memory stores:\n"
        f"  classic queues {classic:,.0f} messages/s (runs: {runs_of['classic']})\n"
        f"  quorum queues  {quorum:,.0f} messages/s (runs: {runs_of['quorum']})\n"
        f"  quorum / classic: {ratio:.0%} (target ≥ {TARGET:.0%}: {verdict}); load {loadavg()}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run, small sizes: a smoke test")
    parser.add_argument("--runs", type=int, help="runs per queue type (default 3, or 1 with --quick)")
    args = parser.parse_args()
    uvloop.run(main(args.quick, args.runs or (1 if args.quick else 3)))
