"""Benchmark of the whole pipeline: ingress acceptance, end-to-end throughput, latency, cost growth.

Run: `make bench`, or `.venv/bin/python -m bench.pipeline_bench [--quick] [--runs R]` from the
repository root (`--quick`: one run of small sizes, a smoke test of the script itself).

Every figure is the median of R runs (3 by default) and is set against a reference measured in
the same run, on the same broker, interleaved with it (reference run, then ours, R times):

- ingress: webhooks accepted per second by the real ingress process (`omnibot run ingress`: channel
  lookup, secret check, validation, the envelope, partition routing, each message persistent and
  confirmed by RabbitMQ before the 200), against `bench/minimal_ingress.py --publish`: an aiohttp
  handler that decodes the same body with msgspec and publishes it with aio-pika, confirmed, before
  answering (the limit of durable acceptance on this stack). The same handler without the publish
  is reported beside it. Driven by an aiohttp client with 64 connections, N requests per run.
- end to end: customer messages per second from webhook to reply in the sandbox. A burst of M
  webhooks (64 in flight) over K chats goes into ingress; dialog runs the echo agent (one reply
  per message, carrying the customer's text); egress posts the replies to the sandbox Omnidesk,
  which records the arrival time of each request. Rate = M / (last reply's arrival - first
  webhook's send). With one and with two dialog and egress replicas (the partitions are shared out
  by the services' own leases; the burst starts once they are). Against the bare three-hop aio-pika
  pipeline (`bench/pipeline_worker.py hop/sink`): the same M bodies published with 64 in flight to
  a queue, consumed and republished twice by two processes (persistent, confirms, manual acks),
  consumed by a third.
- latency: p50 and p99 from a webhook's send to its reply's arrival, the webhooks paced at half the
  maximum rate measured above (open loop), against the bare pipeline paced at the same rate.
- cost growth: the same with 10 and with 10,000 chats, and one chat with a 1,000-message history
  (500 exchanges: 1,000 transcript lines, the chat document's bounded lists full) against one new
  chat: the per-message cost should not grow.
- beside them: `INBOUND_MODE=confirm`, where the customer writes in the sandbox, the sandbox's rule
  fires the webhook and dialog reads the case's new messages back before the turn; and where the
  CPU goes: the CPU time each process spent per message over the bursts (from /proc), which says
  what bounds the rate on two cores.

What is isolated. The headline figures use in-memory stores: dialog's chat store (`MemoryChatStore`'s
contract, keeping the documents encoded: `EncodedChatStore` in bench/pipeline_worker.py) and
egress's delivery cursors (`MemoryDeliveryStore`), because the local MongoDB-protocol server
(SecantusDB) is far slower than MongoDB (environment.md); MongoDB then only serves channel and
agent lookups (cached) and the partition leases (a few writes a second).
The same figures with the stores on the MongoDB-protocol server (the production code path) are
reported beside them, with smaller bursts; they measure that server, not MongoDB.
Chats exist before the measured bursts (pre-filled: in the workers' memory, or inserted into
MongoDB as the stores write them), so every measured message is a turn of an existing chat, and a
warm-up burst runs before the measured ones. Webhooks in `INBOUND_MODE=webhook` (dialog trusts the
webhook's text, so the sandbox is not also read once per message).

Processes: the load generator (this process), ingress, dialog and egress replicas, the sandbox,
the bare pipeline's hops and sink, RabbitMQ and SecantusDB all share the machine's cores, unpinned.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import uvloop

from bench.bare import BarePipeline
from bench.common import mongo
from bench.deploy import Bench
from bench.report import report
from bench.sections import Row, e2e_section, growth_section, ingress_section, loadavg
from bench.sizes import CONCURRENCY, FULL, QUICK
from omnibot.testkit.sandbox import sandbox_process


async def main(quick: bool, runs: int, only: set[str]) -> None:
    sizes = QUICK if quick else FULL
    load_before, started = loadavg(), time.monotonic()
    date = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    log_dir = Path(tempfile.mkdtemp(prefix="omnibot-pipeline-bench-"))
    print(
        f"pipeline benchmark ({'quick' if quick else 'full'}, median of {runs}); logs in {log_dir}",
        flush=True,
    )
    rows: list[Row] = []
    with mongo() as mongo_url:
        async with (
            sandbox_process(per_minute=10**9, log_dir=log_dir) as (sandbox_url, info),
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2)) as session,
        ):
            bench = Bench(mongo_url, sandbox_url, info, sizes, runs, log_dir)
            await bench.open_cases(session, max(sizes.chats, sizes.many if "growth" in only else 0))
            if "ingress" in only:
                rows += await ingress_section(bench, session)
            if only & {"e2e", "growth"}:
                bare = BarePipeline(bench.amqp_url, log_dir)
                await bare.start()
                try:
                    e2e_rows, half = await e2e_section(bench, session, bare, all_rows="e2e" in only)
                    rows += e2e_rows
                finally:
                    await bare.close()
            if "growth" in only:
                rows += await growth_section(bench, session, half)
    minutes = (time.monotonic() - started) / 60
    report(rows, bench, date=date, load=(load_before, loadavg()), minutes=minutes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run, small sizes: a smoke test")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, or 1 with --quick)")
    parser.add_argument(
        "--only", default="ingress,e2e,growth", help="comma-separated sections: ingress, e2e, growth"
    )
    args = parser.parse_args()
    uvloop.run(main(args.quick, args.runs or (1 if args.quick else 3), set(args.only.split(","))))
