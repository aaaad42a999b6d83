"""What observability costs, and Omnidesk API calls per customer message.

Run: `.venv/bin/python -m bench.observability [--quick] [--runs R]` from the repository root.

- end to end, the same pipeline (in-memory stores, 1 dialog + 1 egress, webhook mode) in two
  comparisons, each of two deployments alive together and measured burst by burst in turn, the
  order reversed every other round (`alternate`, balanced): metrics off (`METRICS_ENABLED=false`:
  "before") against metrics on and tracing off (the default); then the default against tracing on
  at ratio 1.0 (`OTEL_TRACES_SAMPLER=parentbased_traceidratio`, arg 1.0; every span exported over
  OTLP/HTTP to a sink in this process that decodes nothing and answers at once). Apart, because a
  traced deployment's exporter is still busy after its burst and would slow whatever runs next.
  The cost of metrics is reported as on/off, both as the ratio of the median rates and as the
  median of each round's own ratio (the two bursts of a round ran seconds apart, so the machine's
  drift falls on both alike), and as the CPU the deployment's processes spent per message (what
  other load on a shared machine changes least).
- what metrics add per customer message, seen from the other side: the recording calls one
  message makes on its way (a webhook, a turn, a delivery, an Omnidesk call, the reply latency)
  timed in a loop in this process, against the wall time per message at the metrics-on rate.
- Omnidesk API calls per customer message in `INBOUND_MODE=webhook` and `confirm`: every request
  the sandbox's log holds after a burst (`/api/...` only), divided by the messages of the burst.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import msgspec
import uvloop
from aiohttp import web

from bench.common import mongo
from bench.deploy import Bench, Deployment
from bench.sections import alternate, med
from bench.sizes import CONCURRENCY, FULL, QUICK
from omnibot.shared import metrics
from omnibot.testkit.ports import free_port
from omnibot.testkit.sandbox import sandbox_process

METRICS_OFF, METRICS_ON, TRACING_ON = "metrics off", "metrics on", "tracing on"


async def otlp_sink() -> tuple[web.AppRunner, str, list[int]]:
    """An OTLP/HTTP traces endpoint that reads each export and answers an empty success."""
    received: list[int] = []

    async def traces(request: web.Request) -> web.Response:
        received.append(len(await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}", received


def recording_cost_us(n: int = 200_000) -> float:
    """Microseconds of metric recording per customer message (the calls its way makes)."""
    headers = {"api_calls_left": "400"}
    started = time.perf_counter()
    for _ in range(n):
        metrics.record_webhook("1", "accepted")
        metrics.record_turn("done", 0.004)
        metrics.record_delivery("reply", "delivered", 0.003)
        metrics.record_omnidesk_call(
            metrics.account_label("http://127.0.0.1:8090"), "POST", "201", 0.002, headers
        )
        metrics.record_reply_latency(0.02)
    return (time.perf_counter() - started) / n * 1e6


async def check_metrics_switch(session: aiohttp.ClientSession, off: Deployment, on: Deployment) -> None:
    """The comparison is real: the "off" ingress recorded nothing and serves no metrics."""
    async with session.get(f"{off.monitoring_url}/metrics") as response:
        if response.status != 404:
            raise RuntimeError(f"METRICS_ENABLED=false, yet ingress's /metrics answered {response.status}")
    async with session.get(f"{on.monitoring_url}/metrics") as response:
        if 'omnibot_webhooks_total{channel="' not in await response.text():
            raise RuntimeError("metrics on, yet ingress counted no webhook")


async def api_calls(session: aiohttp.ClientSession, bench: Bench) -> int:
    async with session.get(f"{bench.sandbox_url}/sandbox/requests") as response:
        log = msgspec.json.decode(await response.read())
    return sum(1 for r in log["requests"] if str(r["path"]).startswith("/api/"))


async def calls_per_message(session: aiohttp.ClientSession, bench: Bench, dep: Deployment, n: int) -> float:
    await bench.run(session, dep, min(bench.sizes.warmup, n), prefix="w")  # staff id, label cached
    burst = await bench.run(session, dep, n, prefix="c")
    return await api_calls(session, bench) / max(burst.received, 1)


async def main(quick: bool, runs: int) -> None:
    sizes = QUICK if quick else FULL
    log_dir = Path(tempfile.mkdtemp(prefix="omnibot-observability-bench-"))
    print(f"observability benchmark ({'quick' if quick else 'full'}, median of {runs}); logs in {log_dir}")
    sink, sink_url, exports = await otlp_sink()
    tracing = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
    }
    no_metrics = {"METRICS_ENABLED": "false"}
    try:
        with mongo() as mongo_url:
            async with (
                sandbox_process(per_minute=10**9, log_dir=log_dir) as (sandbox_url, info),
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2)) as session,
            ):
                bench = Bench(mongo_url, sandbox_url, info, sizes, runs, log_dir)
                await bench.open_cases(session, sizes.chats)
                c = sizes.chats
                async with bench.deploy(store="memory", replicas=1, chats=c) as plain:
                    # Each comparison with only its two deployments alive, in balanced order.
                    async with bench.deploy(store="memory", replicas=1, chats=c, env=no_metrics) as bare:
                        variants = {METRICS_OFF: bare, METRICS_ON: plain}
                        results = await alternate(bench, session, variants, sizes.burst, None, balanced=True)
                        await check_metrics_switch(session, bare, plain)
                    async with bench.deploy(store="memory", replicas=1, chats=c, env=tracing) as traced:
                        variants = {METRICS_ON: plain, TRACING_ON: traced}
                        traces = await alternate(bench, session, variants, sizes.burst, None, balanced=True)
                    webhook_calls = await calls_per_message(session, bench, plain, min(sizes.burst, 500))
                async with bench.deploy(store="memory", replicas=1, chats=c, inbound_mode="confirm") as dep:
                    confirm_calls = await calls_per_message(session, bench, dep, min(sizes.burst, 500))
    finally:
        await sink.cleanup()
    bare_rate, plain_rate = results[METRICS_OFF].rate, results[METRICS_ON].rate
    untraced_rate, traced_rate = traces[METRICS_ON].rate, traces[TRACING_ON].rate
    paired = statistics.median(
        on / off for on, off in zip(results[METRICS_ON].rates, results[METRICS_OFF].rates, strict=True)
    )
    cpu_off, cpu_on = med(results[METRICS_OFF].cpu_us), med(results[METRICS_ON].cpu_us)
    cost = recording_cost_us()
    per_message_us = 1e6 / plain_rate
    print("\n### Observability benchmark\n")
    print("| what | figure |\n|---|---|")
    print(
        f"| end to end, metrics off (METRICS_ENABLED=false; in-memory, 1 + 1, {c} chats) |"
        f" {bare_rate:,.0f} msg/s |"
    )
    print(
        f"| same, metrics on, tracing off (the default) | {plain_rate:,.0f} msg/s:"
        f" {plain_rate / bare_rate:.1%} of off (median of the rounds' own ratios: {paired:.1%};"
        " target: at least 97%) |"
    )
    print(
        f"| CPU per message (ingress + dialog + egress), metrics off → on | {cpu_off:,.0f} µs →"
        f" {cpu_on:,.0f} µs ({cpu_on / cpu_off - 1:+.1%}) |"
    )
    print(
        f"| end to end, tracing on at ratio 1.0 (OTLP/HTTP to a local sink) | {traced_rate:,.0f} msg/s"
        f" ({traced_rate / untraced_rate:.0%} of tracing off, {untraced_rate:,.0f} msg/s in that"
        " comparison) |"
    )
    print(
        f"| metric recording per customer message, timed in a loop | {cost:.1f} µs ="
        f" {cost / per_message_us:.2%} of the {per_message_us:,.0f} µs each message takes"
        f" at {plain_rate:,.0f}/s |"
    )
    print(f"| Omnidesk API calls per customer message, INBOUND_MODE=webhook | {webhook_calls:.2f} |")
    print(f"| Omnidesk API calls per customer message, INBOUND_MODE=confirm | {confirm_calls:.2f} |")
    rates = "; ".join(f"{name}: {_runs(result.rates)}" for name, result in results.items())
    traced_runs = "; ".join(f"{name}: {_runs(result.rates)}" for name, result in traces.items())
    print(
        f"\nBursts of {sizes.burst}, two deployments at a time in turn (A B, B A, ...); rates are medians"
        f" of {runs}. Metrics off against on: {rates}. Tracing: {traced_runs}."
        f" {len(exports)} OTLP exports received."
    )


def _runs(rates: list[float]) -> str:
    return ", ".join(f"{r:,.0f}" for r in rates) + f" (spread {statistics.pstdev(rates):,.0f})"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run, small sizes: a smoke test")
    parser.add_argument("--runs", type=int, help="runs per figure (default 7, or 2 with --quick)")
    args = parser.parse_args()
    # Seven rounds: a 3% difference is well within one burst's noise on a shared machine.
    uvloop.run(main(args.quick, args.runs or (2 if args.quick else 7)))
