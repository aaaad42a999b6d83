"""The benchmark's sections (ingress, end to end, cost growth): each runs its figures against its
reference and gives the report's rows."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aio_pika
import aiohttp

from bench.bare import BarePipeline
from bench.common import spawn, started
from bench.cpu import CpuMeter
from bench.deploy import Bench, Deployment
from bench.load import Burst, percentile, request_rate, webhook_body
from bench.sizes import CONCURRENCY, CPU_E2E, E2E_TARGET, FLAT, INGRESS_TARGET, MAX_RUN, P99_TARGET_MS, Store
from omnibot.shared.topology import Topology
from omnibot.testkit.ports import free_port


@dataclass
class Row:
    what: str
    value: str
    reference: str = "—"
    ratio: str = "—"
    target: str = "—"
    result: str = "—"


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def per_s(value: float) -> str:
    return f"{value:,.0f}/s"


def verdict(ok: bool) -> str:
    return "pass" if ok else "**fail**"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def section(title: str) -> Callable[[str], None]:
    def say(text: str) -> None:
        print(f"  [{title}] {text}", flush=True)

    return say


async def ingress_section(bench: Bench, session: aiohttp.ClientSession) -> list[Row]:
    """The real ingress against the minimal handlers, each run in turn, R times."""
    say = section("ingress")
    sizes, runs = bench.sizes, bench.runs
    async with bench.deploy(store="memory", replicas=0, chats=100) as dep:
        topology = Topology.build(dep.settings.amqp_namespace, dep.settings.chat_partitions)
        queue = f"{dep.settings.amqp_namespace}.minimal"
        publish = ["--publish", "--amqp-url", bench.amqp_url]
        flavours = {
            "bare": [],
            "publish": [*publish, "--queue", queue],
            "partitioned": [*publish, "--exchange", topology.inbound.name, "--partitions", "8"],
        }
        ports = {name: free_port() for name in flavours}
        minimal = {
            name: spawn(
                f"minimal-{name}",
                [sys.executable, "-m", "bench.minimal_ingress", "--port", str(ports[name]), *args],
                bench.log_dir,
            )
            for name, args in flavours.items()
        }
        await asyncio.gather(*(started(p) for p in minimal.values()))
        urls = {name: f"http://127.0.0.1:{port}/webhooks/omnidesk/1/secret" for name, port in ports.items()}
        urls["ingress"] = dep.webhook_url
        servers = {"ingress": dep.pids["ingress"]}
        servers.update({name: [p.pid] for name, p in minimal.items() if p.popen is not None})
        shared = bench.shared_pids(bench.mongo_url)
        others = {k: shared[k] for k in ("RabbitMQ", "load generator (this process)")}
        meters = {name: CpuMeter({"server": servers[name], **others}) for name in urls}
        rates: dict[str, list[float]] = {name: [] for name in urls}
        connection = await aio_pika.connect_robust(bench.amqp_url)
        try:
            channel = await connection.channel()
            chats = dep.chats
            bodies = [webhook_body(f"i{i}", chats[i % len(chats)]) for i in range(sizes.ingress_requests)]

            async def purge() -> None:
                for name in [queue, *topology.inbound.partition_queues]:
                    await (await channel.get_queue(name, ensure=False)).purge()

            for run in range(runs):
                for name, url in urls.items():
                    await purge()
                    await request_rate(session, url, bodies[: sizes.warmup], CONCURRENCY)
                    meters[name].start()
                    rates[name].append(await request_rate(session, url, bodies, CONCURRENCY))
                    meters[name].stop()
                say(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()))
            await purge()
        finally:
            await connection.close()
            await asyncio.gather(*(p.stop() for p in minimal.values()))
    columns = {
        "ingress": "ingress",
        "publish": "minimal + publish",
        "partitioned": "minimal + publish to the 8 partitions",
        "bare": "minimal, no publish",
    }
    bench.cpu["CPU per webhook (µs)"] = {
        columns[name]: meters[name].per_message_us(runs * sizes.ingress_requests) for name in columns
    }
    ingress, reference = med(rates["ingress"]), med(rates["publish"])
    partitioned, bare = med(rates["partitioned"]), med(rates["bare"])
    return [
        Row(
            "ingress: webhooks accepted, each confirmed by RabbitMQ before the 200",
            per_s(ingress),
            f"{per_s(reference)} minimal aiohttp + msgspec + aio-pika confirmed publish",
            f"{ingress / reference:.0%}",
            f"≥ {INGRESS_TARGET:.0%}",
            verdict(ingress >= INGRESS_TARGET * reference),
        ),
        Row(
            "ingress reference publishing into ingress's 8 partition queues instead of one queue",
            per_s(partitioned),
            f"{per_s(reference)} the same into one queue",
            f"{partitioned / reference:.0%}",
        ),
        Row("ingress reference without the publish: aiohttp + msgspec decode only", per_s(bare)),
    ]


@dataclass
class E2E:
    rates: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    latency_rate: float = 0.0
    latency: list[Burst] = field(default_factory=list)
    bare_latency: list[Burst] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # `alternate`: CPU µs per message, per burst

    @property
    def rate(self) -> float:
        return med(self.rates)

    def p(self, q: float, bare: bool = False) -> float:
        runs = self.bare_latency if bare else self.latency
        return med([percentile(b.latencies_ms, q) for b in runs])


async def e2e(
    bench: Bench,
    session: aiohttp.ClientSession,
    bare: BarePipeline | None,
    *,
    label: str,
    store: Store,
    replicas: int,
    chats: int,
    burst: int,
    latency: float | Literal["half"] | None = None,
    inbound_mode: Literal["webhook", "confirm"] = "webhook",
    cpu_table: str | None = None,
) -> E2E:
    """R bursts (each after a bare-pipeline burst of the same size, if `bare`), then R paced runs
    at `latency` messages/s ("half": half the median burst rate just measured), each followed by
    the bare pipeline paced at the same rate. With several replicas every burst gets a deployment
    of its own: how the partitions fall to the replicas differs from one start to the next.
    `cpu_table`: record the CPU each process spent per message over the bursts under that title."""
    say = section(label)
    result = E2E()
    bare_meter = CpuMeter({**(bare.pids() if bare else {}), **bench.shared_pids(bench.mongo_url)})
    meter: CpuMeter | None = None

    def bare_items(dep: Deployment, n: int) -> list[tuple[str, bytes]]:
        run = uuid.uuid4().hex[:6]
        return [(f"b{run}-{j}", webhook_body(f"b{run}-{j}", dep.chats[0])) for j in range(n)]

    deployments, bursts = (bench.runs, 1) if replicas > 1 else (1, bench.runs)
    for _ in range(deployments):
        deployment = bench.deploy(store=store, replicas=replicas, chats=chats, inbound_mode=inbound_mode)
        async with deployment as dep:
            if replicas > 1:
                result.splits.append(dep.split)
            await bench.run(session, dep, min(bench.sizes.warmup, burst // 4), prefix="w")
            meter = CpuMeter({**dep.pids, **bench.shared_pids(dep.mongo_url)})
            for _ in range(bursts):
                line = f"burst {len(result.rates) + 1}:"
                if bare is not None:
                    bare_meter.start()
                    result.bare.append((await bare.burst(bare_items(dep, burst))).rate)
                    bare_meter.stop()
                    line += f" bare {result.bare[-1]:,.0f}/s,"
                meter.start()
                measured = await bench.run(session, dep, burst)
                meter.stop()
                result.rates.append(measured.rate)
                line += f" pipeline {measured.rate:,.0f}/s ({measured.received}/{measured.sent} replies)"
                say(line + (f"; partitions {dep.split}" if replicas > 1 else ""))
            if latency is None:
                continue
            rate = result.rate / 2 if latency == "half" else latency
            result.latency_rate = rate
            n = min(MAX_RUN, max(20, int(rate * bench.sizes.latency_s)))
            for run in range(bench.runs):
                paced = await bench.run(session, dep, n, rate=rate, prefix="l")
                result.latency.append(paced)
                line = (
                    f"paced {run + 1} at {rate:,.0f}/s: p50 {percentile(paced.latencies_ms, 50):.1f} ms,"
                    f" p99 {percentile(paced.latencies_ms, 99):.1f} ms ({paced.received}/{paced.sent})"
                )
                if bare is not None:
                    result.bare_latency.append(await bare.paced(bare_items(dep, n), rate))
                    line += f"; bare p99 {percentile(result.bare_latency[-1].latencies_ms, 99):.1f} ms"
                say(line)
    if cpu_table is not None and meter is not None:
        table = bench.cpu.setdefault(cpu_table, {})
        table[label] = meter.per_message_us(burst * bursts)
        if bare is not None and "bare 3-hop" not in table:
            table["bare 3-hop"] = bare_meter.per_message_us(burst * bursts)
    return result


def e2e_row(what: str, figure: E2E, target: bool) -> Row:
    ratio = figure.rate / med(figure.bare)
    return Row(
        what,
        f"{per_s(figure.rate)} messages",
        f"{per_s(med(figure.bare))} bare 3-hop aio-pika",
        f"{ratio:.0%}",
        f"≥ {E2E_TARGET:.0%}" if target else "reported",
        verdict(ratio >= E2E_TARGET) if target else "—",
    )


def latency_text(figure: E2E, bare: bool = False) -> str:
    return f"p50 {figure.p(50, bare):.1f} ms, p99 {figure.p(99, bare):.1f} ms"


def growth_row(what: str, large: E2E, small: E2E, small_name: str, latency: bool) -> Row:
    ratio = large.rate / small.rate
    value, reference = per_s(large.rate), f"{per_s(small.rate)} {small_name}"
    if latency:
        value += f"; {latency_text(large)}"
        reference += f"; {latency_text(small)}"
    return Row(what, value, reference, f"{ratio:.0%}", f"flat (≥ {FLAT:.0%})", verdict(ratio >= FLAT))


async def e2e_section(
    bench: Bench, session: aiohttp.ClientSession, bare: BarePipeline, *, all_rows: bool
) -> tuple[list[Row], float]:
    """The end-to-end and latency rows, and the rate the latency was measured at."""
    sizes, c, mb = bench.sizes, bench.sizes.chats, bench.sizes.mongo_burst
    memory1 = await e2e(
        bench, session, bare, label="in-memory, 1 replica", store="memory", replicas=1, chats=c,
        burst=sizes.burst, latency="half", cpu_table=CPU_E2E,
    )  # fmt: skip
    half = memory1.latency_rate
    rows = [e2e_row(f"end to end, in-memory stores, 1 dialog + 1 egress, {c} chats", memory1, True)]
    if all_rows:
        for label, store, replicas, burst in (
            ("in-memory, 2 replicas", "memory", 2, sizes.burst),
            ("SecantusDB, 1 replica", "mongo", 1, mb),
            ("SecantusDB, 2 replicas", "mongo", 2, mb),
        ):
            figure = await e2e(
                bench, session, bare, label=label, store=store, replicas=replicas, chats=c, burst=burst,  # type: ignore[arg-type]
                cpu_table=CPU_E2E if store == "mongo" and replicas == 1 else None,
            )  # fmt: skip
            what = (
                f"end to end, in-memory stores, {replicas} dialog + {replicas} egress, {c} chats"
                if store == "memory"
                else f"end to end, SecantusDB stores, {replicas} + {replicas}, {c} chats, bursts of {mb}"
            )
            if figure.splits:
                what += f" (partitions per replica: {'; '.join(figure.splits)})"
            rows.append(e2e_row(what, figure, store == "memory"))
        confirm = await e2e(
            bench, session, bare, label="confirm mode", store="memory", replicas=1, chats=c,
            burst=sizes.burst, inbound_mode="confirm", cpu_table=CPU_E2E,
        )  # fmt: skip
        what = (
            f"end to end, INBOUND_MODE=confirm: the customer writes in the sandbox, its rule fires the"
            f" webhook, dialog reads the case back; in-memory, 1 + 1, {c} chats"
        )
        rows.append(e2e_row(what, confirm, False))
    rows.append(
        Row(
            f"latency webhook → reply at {half:,.0f}/s (half the max), in-memory, 1 + 1, {c} chats",
            latency_text(memory1),
            f"{latency_text(memory1, bare=True)} bare 3-hop at the same rate",
            "—",
            f"p99 < {P99_TARGET_MS:.0f} ms",
            verdict(memory1.p(99) < P99_TARGET_MS),
        )
    )
    return rows, half


async def alternate(
    bench: Bench,
    session: aiohttp.ClientSession,
    variants: dict[str, Deployment],
    burst: int,
    latency: float | None,
    *,
    balanced: bool = False,
) -> dict[str, E2E]:
    """Several variants measured in turn (a burst of each, R times; then paced runs likewise), so
    that the machine's ups and downs fall on all of them alike. `balanced` reverses the order every
    other round (A B, B A, ...): what a burst leaves behind (a tracer still exporting, a collection)
    then falls on each variant as often."""
    results = {name: E2E() for name in variants}
    for dep in variants.values():
        await bench.run(session, dep, min(bench.sizes.warmup, burst // 4), prefix="w")
    for round_ in range(bench.runs):
        order = list(variants.items())
        if balanced and round_ % 2:
            order.reverse()
        for name, dep in order:
            # The deployment's own processes (ingress, dialog, egress): CPU per message is what
            # other load on the machine changes least, where it halves a burst's rate.
            meter = CpuMeter({name: [pid for pids in dep.pids.values() for pid in pids]})
            meter.start()
            measured = await bench.run(session, dep, burst)
            meter.stop()
            results[name].rates.append(measured.rate)
            results[name].cpu_us.append(meter.per_message_us(measured.received or 1)[name])
            section(name)(
                f"burst: {measured.rate:,.0f}/s ({measured.received}/{measured.sent} replies),"
                f" {results[name].cpu_us[-1]:,.0f} µs CPU per message"
            )
    if latency is not None:
        n = min(MAX_RUN, max(20, int(latency * bench.sizes.latency_s)))
        for _ in range(bench.runs):
            for name, dep in variants.items():
                paced = await bench.run(session, dep, n, rate=latency, prefix="l")
                results[name].latency_rate = latency
                results[name].latency.append(paced)
                section(name)(
                    f"paced at {latency:,.0f}/s: p50 {percentile(paced.latencies_ms, 50):.1f} ms,"
                    f" p99 {percentile(paced.latencies_ms, 99):.1f} ms ({paced.received}/{paced.sent})"
                )
    return results


async def growth_section(bench: Bench, session: aiohttp.ClientSession, half: float) -> list[Row]:
    """10 against 10,000 chats (two deployments alive together, measured in turn), and chats with
    one exchange against chats with a 1,000-message history (in one deployment; each run takes a
    chat of each that no burst has touched yet), per store."""
    sizes, runs = bench.sizes, bench.runs
    few, many, hist = sizes.few, sizes.many, sizes.history
    rows = []
    for store, name, burst in (
        ("memory", "in-memory", sizes.burst),
        ("mongo", "SecantusDB", sizes.mongo_burst),
    ):
        latency = half if store == "memory" else None
        async with contextlib.AsyncExitStack() as stack:
            deployments = {
                f"{name}, {chats:,} chats": await stack.enter_async_context(
                    bench.deploy(store=store, replicas=1, chats=chats)  # type: ignore[arg-type]
                )
                for chats in (few, many)
            }
            size = await alternate(bench, session, deployments, burst, latency)
        # Chat 0 takes the warm-up; then run i uses new chat 1 + i and long chat 1 + runs + i.
        cases = [case for case, _ in bench.cases[: 1 + 2 * runs]]
        long_chats = dict.fromkeys(cases[1 + runs :], hist)
        async with bench.deploy(store=store, replicas=1, chats=len(cases), history=long_chats) as dep:  # type: ignore[arg-type]
            await bench.run(
                session, dep.on(dep.chats[:1]), min(bench.sizes.warmup, sizes.single_burst), prefix="w"
            )
            length = {"one exchange": E2E(), f"{2 * hist:,} messages": E2E()}
            for run in range(runs):
                for label, chat in zip(length, (dep.chats[1 + run], dep.chats[1 + runs + run]), strict=True):
                    measured = await bench.run(session, dep.on([chat]), sizes.single_burst)
                    length[label].rates.append(measured.rate)
                    section(f"{name}, one chat, {label} before")(
                        f"burst: {measured.rate:,.0f}/s ({measured.received}/{measured.sent} replies)"
                    )
        suffix = f" (latency at {half:,.0f}/s)" if latency else f", bursts of {burst}"
        small, large = size[f"{name}, {few:,} chats"], size[f"{name}, {many:,} chats"]
        rows.append(
            growth_row(
                f"cost growth, {name}: {many:,} chats{suffix}", large, small, f"{few} chats", bool(latency)
            )
        )
        what = f"cost growth, {name}: a {2 * hist:,}-message chat history, bursts of {sizes.single_burst}"
        long, short = length[f"{2 * hist:,} messages"], length["one exchange"]
        rows.append(growth_row(what, long, short, "a chat with one exchange", False))
    return rows
