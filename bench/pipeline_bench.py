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
import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import itertools
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aio_pika
import aiohttp
import msgspec
import uvloop
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.common import ROOT, bench_settings, free_port, machine, mongo, sandbox_process
from bench.pipeline_worker import ECHO_AGENT, Prefill, prefilled
from omnibot.admin.operations import Management
from omnibot.shared.crypto import SecretBox
from omnibot.shared.partitions import rendezvous_owner
from omnibot.shared.settings import Settings, env_name
from omnibot.shared.topology import Topology, delete_topology

Store = Literal["memory", "mongo"]
CONCURRENCY = 64  # webhooks (and bare publishes) in flight
MAX_RUN = 8_000  # messages per paced run at most: the sandbox's request log keeps the newest 10,000
E2E_TARGET = 0.40
INGRESS_TARGET = 0.80
P99_TARGET_MS = 50.0
CPU_E2E = "CPU per message, end to end (µs)"
FLAT = 0.80  # "flat": the larger case keeps at least this share of the smaller one's throughput
JSON_HEADERS = {"Content-Type": "application/json"}
FILLER = "Здравствуйте! Подскажите, пожалуйста, где мой заказ: оформила его на прошлой неделе, а статус"


@dataclass(frozen=True)
class Sizes:
    ingress_requests: int  # per run and handler
    burst: int  # end-to-end messages per measured burst (in-memory stores)
    mongo_burst: int  # the same on the MongoDB-protocol server
    chats: int  # the headline's chats
    few: int
    many: int
    history: int  # exchanges already in the long chat
    single_burst: int  # messages to one chat
    latency_s: float  # seconds of paced traffic per latency run
    warmup: int


FULL = Sizes(
    ingress_requests=10_000,
    burst=3000,
    mongo_burst=400,
    chats=100,
    few=10,
    many=10_000,
    history=500,
    single_burst=300,
    latency_s=10.0,
    warmup=200,
)
QUICK = Sizes(
    ingress_requests=1000,
    burst=300,
    mongo_burst=60,
    chats=20,
    few=10,
    many=500,
    history=50,
    single_burst=40,
    latency_s=3.0,
    warmup=40,
)


# --- measurements ---------------------------------------------------------------------------


@dataclass
class Burst:
    sent: int
    received: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def timed(sent: dict[str, float], arrived: dict[str, float]) -> Burst:
    got = [tag for tag in sent if tag in arrived]
    if not got:
        return Burst(len(sent), 0, 0.0, [])
    seconds = max(arrived[t] for t in got) - min(sent.values())
    return Burst(len(sent), len(got), seconds, [(arrived[t] - sent[t]) * 1000 for t in got])


def webhook_body(tag: str, case: tuple[int, int]) -> bytes:
    case_id, user_id = case
    return msgspec.json.encode(
        {
            "event": "new_message",
            "message": {"kind": "text", "text": f"{tag} {FILLER}"},
            "visitor": {
                "id": str(user_id),
                "fields": {
                    "email": f"customer{user_id}@bench.local",
                    "login": str(user_id),
                    "name": "Анна Покупатель",
                    "phone": "+7 900 000-00-00",
                },
            },
            "chat_id": str(case_id),
        }
    )


async def post_one(session: aiohttp.ClientSession, url: str, body: bytes) -> None:
    """POST a body that must be answered 200; through the sandbox (a customer message), the
    webhooks its rule fired must have been answered 200 too."""
    async with session.post(url, data=body, headers=JSON_HEADERS) as response:
        answer = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}: {answer[:300]!r}")
    if url.endswith("/sandbox/customer-messages"):
        webhooks = msgspec.json.decode(answer)["webhooks"]
        if not webhooks or any(w["status"] != 200 for w in webhooks):
            raise RuntimeError(f"the sandbox's webhook was refused: {webhooks}")


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The load generator is the measuring instrument: it must not stop for a full garbage
    collection (tens of ms with its heap) while it sends and timestamps. Collect now, then not
    until the sending is over. The services under test collect as they always do."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def send_burst(
    session: aiohttp.ClientSession, url: str, items: Sequence[tuple[str, bytes]], concurrency: int
) -> dict[str, float]:
    """POST every body with `concurrency` in flight; each must be answered 200. Send times by tag."""
    sent: dict[str, float] = {}
    queue = iter(items)

    async def worker() -> None:
        for tag, body in queue:
            sent[tag] = time.monotonic()
            await post_one(session, url, body)

    with collector_paused():
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


async def send_paced(
    session: aiohttp.ClientSession, url: str, items: Sequence[tuple[str, bytes]], rate: float
) -> dict[str, float]:
    """Open loop: item i is sent at start + i / rate, whatever the answers before it."""
    sent: dict[str, float] = {}

    async def one(tag: str, body: bytes) -> None:
        sent[tag] = time.monotonic()
        await post_one(session, url, body)

    with collector_paused():
        start = time.monotonic()
        tasks = []
        for i, (tag, body) in enumerate(items):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(tag, body)))
        await asyncio.gather(*tasks)
    return sent


async def request_rate(
    session: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], concurrency: int
) -> float:
    items = [(str(i), body) for i, body in enumerate(bodies)]
    started = time.perf_counter()
    await send_burst(session, url, items, concurrency)
    return len(items) / (time.perf_counter() - started)


# --- CPU accounting -------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def find_pids(*needles: str) -> list[int]:
    """Processes whose command line contains every needle (arguments joined by spaces)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if all(needle in command for needle in needles):
                found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU seconds spent by named groups of processes between `start()` and `stop()`, summed
    over several measurements."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.spent: dict[str, float] = dict.fromkeys(groups, 0.0)
        self._at: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()}

    def start(self) -> None:
        self._at = self._now()

    def stop(self) -> None:
        for name, value in self._now().items():
            self.spent[name] += value - self._at[name]

    def per_message_us(self, messages: int) -> dict[str, float]:
        return {name: spent / messages * 1e6 for name, spent in self.spent.items()}


# --- processes ------------------------------------------------------------------------------


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment `omnibot run` reads `settings` from (as tests/harness.py does)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIBOT_", "AMQP_", "MONGODB_"))}
    for name in Settings.__struct_fields__:
        value = getattr(settings, name)
        env[env_name(name)] = str(value).lower() if isinstance(value, bool) else str(value)
    env["OMNIBOT_HEALTH_DIR"] = settings.data_dir
    env["LOG_FORMAT"] = "text"
    return env


class Process:
    """A child process whose stderr goes to a log file; `ready` once it printed `ready` (or once
    `wait_ready` says so)."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def start(self, *, wait_line: bool = True, limit_s: float = 60) -> None:
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE if wait_line else log,
                stderr=log,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        if not wait_line:
            return
        self._reader = asyncio.create_task(self._read())
        deadline = time.monotonic() + limit_s
        while True:
            try:
                line = await asyncio.wait_for(self.lines.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise RuntimeError(f"{self.name} not ready in {limit_s}s: {self.log_tail()}") from None
            if line == "ready":
                return
            if not line:
                raise RuntimeError(f"{self.name} failed to start: {self.log_tail()}")

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.put_nowait(line.decode().strip())
        self.lines.put_nowait("")  # exited

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()


def die_with_parent() -> None:
    """In the child before exec: SIGTERM it when this process dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def worker(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "bench.pipeline_worker", name, *args]


# --- the bare three-hop pipeline ------------------------------------------------------------


class BarePipeline:
    """publish -> A -> hop -> B -> hop -> C -> sink, each hop and the sink its own process."""

    def __init__(self, amqp_url: str, log_dir: Path, prefetch: int = 64) -> None:
        self.amqp_url = amqp_url
        self.prefix = f"bench-bare-{uuid.uuid4().hex[:8]}"
        self.queues = [f"{self.prefix}.{q}" for q in "ABC"]
        self.log_dir = log_dir
        self.prefetch = prefetch
        self.processes: list[Process] = []
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
            Process(
                "bare-hop1",
                worker("hop", "--amqp-url", url, "--source", a, "--target", b, "--prefetch", p),
                self.log_dir,
            ),
            Process(
                "bare-hop2",
                worker("hop", "--amqp-url", url, "--source", b, "--target", c, "--prefetch", p),
                self.log_dir,
            ),
            Process(
                "bare-sink", worker("sink", "--amqp-url", url, "--source", c, "--prefetch", p), self.log_dir
            ),
        ]
        await asyncio.gather(*(p.start() for p in self.processes))
        self._collector = asyncio.create_task(self._collect(self.processes[-1]))

    async def _collect(self, sink: Process) -> None:
        while line := await sink.lines.get():
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
        sent: dict[str, float] = {}
        queue = iter(items)

        async def publisher() -> None:
            for tag, body in queue:
                sent[tag] = time.monotonic()
                await self._publish(tag, body)

        with collector_paused():
            await asyncio.gather(*(publisher() for _ in range(CONCURRENCY)))
        await self._wait_all([t for t, _ in items], 60 + len(items) / 50)
        return timed(sent, self.arrived)

    async def paced(self, items: Sequence[tuple[str, bytes]], rate: float) -> Burst:
        sent: dict[str, float] = {}

        async def one(tag: str, body: bytes) -> None:
            sent[tag] = time.monotonic()
            await self._publish(tag, body)

        with collector_paused():
            start, tasks = time.monotonic(), []
            for i, (tag, body) in enumerate(items):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(tag, body)))
            await asyncio.gather(*tasks)
        await self._wait_all([t for t, _ in items], 60)
        return timed(sent, self.arrived)

    def pids(self) -> dict[str, list[int]]:
        return {p.name: [p.process.pid] for p in self.processes if p.process is not None}

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


# --- the system under test ------------------------------------------------------------------


@dataclass
class Deployment:
    settings: Settings
    webhook_url: str
    channel_id: int
    chats: list[tuple[int, int]]  # (case id, user id) in the sandbox
    mongo_url: str
    split: str  # how the partitions are shared out among the replicas
    inbound_mode: str = "webhook"
    pids: dict[str, list[int]] = field(default_factory=dict)  # by role: ingress, dialog, egress
    next_chat: int = 0

    def items(self, n: int, prefix: str) -> list[tuple[str, tuple[int, int]]]:
        """n messages spread over the chats, continuing where the previous burst stopped; the tags
        are unique within the whole benchmark."""
        burst = next(BURSTS)
        chosen = [
            (f"{prefix}{burst}-{j}", self.chats[(self.next_chat + j) % len(self.chats)]) for j in range(n)
        ]
        self.next_chat = (self.next_chat + n) % len(self.chats)
        return chosen

    def on(self, chats: list[tuple[int, int]]) -> Deployment:
        """The same deployment, its bursts going to these chats only."""
        return dataclasses.replace(self, chats=chats, next_chat=0)


BURSTS = itertools.count()


@dataclass
class Bench:
    mongo_url: str
    sandbox_url: str
    sandbox: dict[str, Any]
    sizes: Sizes
    runs: int
    log_dir: Path
    cases: list[tuple[int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cpu: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # table -> column -> row

    @property
    def amqp_url(self) -> str:
        return os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

    def shared_pids(self, mongo_url: str) -> dict[str, list[int]]:
        """The processes every measurement shares: RabbitMQ, SecantusDB, the sandbox, this one."""
        mongo_port = mongo_url.rsplit(":", 1)[-1].split("/")[0]
        sandbox_port = self.sandbox_url.rsplit(":", 1)[-1]
        return {
            "load generator (this process)": [os.getpid()],
            "RabbitMQ": find_pids("beam.smp", "rabbit"),
            "SecantusDB": find_pids("secantusd", f"--port {mongo_port} "),
            "sandbox": find_pids("omnibot.launcher sandbox", f"--port {sandbox_port}"),
        }

    async def open_cases(self, session: aiohttp.ClientSession, count: int) -> None:
        """Cases the webhooks talk about: egress posts the replies into them."""
        numbers = iter(range(len(self.cases), count))

        async def opener() -> None:
            for i in numbers:
                body = {"text": "hello", "user": {"name": f"c{i}", "email": f"c{i}@bench.local"}}
                async with session.post(f"{self.sandbox_url}/sandbox/customer-messages", json=body) as r:
                    answer = await r.json()
                    self.cases.append((int(answer["case_id"]), int(answer["user_id"])))

        await asyncio.gather(*(opener() for _ in range(16)))

    @contextlib.asynccontextmanager
    async def deploy(
        self,
        *,
        store: Store,
        replicas: int,
        chats: int,
        history: dict[int, int] | None = None,
        inbound_mode: Literal["webhook", "confirm"] = "webhook",
    ) -> AsyncIterator[Deployment]:
        """A fresh namespace and database with ingress, `replicas` dialog and egress processes, a
        channel on the sandbox running the echo agent, and `chats` chats pre-filled with one
        exchange each (`history`: case id -> exchanges, for some of them). With the stores on the
        MongoDB-protocol server, that server is started afresh for the deployment: SecantusDB's
        writes slow down as it accumulates them (from about 1 ms to 6 ms after some 15,000),
        which would make each figure depend on what ran before it."""
        async with contextlib.AsyncExitStack() as stack:
            mongo_url = self.mongo_url
            if store == "mongo" and replicas:
                mongo_url = stack.enter_context(mongo())
            yield await stack.enter_async_context(
                self._deploy(mongo_url, store, replicas, chats, history or {}, inbound_mode)
            )

    @contextlib.asynccontextmanager
    async def _deploy(
        self,
        mongo_url: str,
        store: Store,
        replicas: int,
        chats: int,
        history: dict[int, int],
        inbound_mode: Literal["webhook", "confirm"],
    ) -> AsyncIterator[Deployment]:
        port = free_port()
        settings = bench_settings(
            mongo_url,
            ingress_host="127.0.0.1",
            ingress_port=port,
            public_base_url=f"http://127.0.0.1:{port}",
            inbound_mode=inbound_mode,
            chat_partitions=8,
        )
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        db = client[settings.mongodb_db]
        processes: list[Process] = []
        try:
            ops = Management(db, SecretBox(settings.secret_key), settings)
            agent = await ops.agents.import_agent(json.dumps(ECHO_AGENT), publish=True)
            channel = await ops.channels.create_channel(
                title="bench",
                domain=self.sandbox_url,
                api_key=str(self.sandbox["api_key"]),
                email=str(self.sandbox["bot_email"]),
                agent=str(ECHO_AGENT["name"]),
            )
            env = settings_env(settings)
            ingress = Process(
                "ingress", [sys.executable, "-m", "omnibot.launcher", "run", "ingress"], self.log_dir, env
            )
            processes.append(ingress)
            await ingress.start(wait_line=False)
            await wait_http(f"http://127.0.0.1:{port}/readyz", ingress)
            activated = await ops.channels.activate_channel(channel.id)
            if not activated.active:
                raise RuntimeError(f"channel not activated: {activated.checks}")
            chosen = self.cases[:chats]
            spec = Prefill(
                channel_id=channel.id,
                agent_version=agent.version,
                chats=[str(case) for case, _ in chosen],
                history={str(case): turns for case, turns in history.items()},
            )
            prefill_args: list[str] = []
            if replicas and store == "mongo":
                await insert_prefill(db, spec)
            elif replicas:
                path = self.log_dir / f"prefill-{uuid.uuid4().hex[:6]}.json"
                path.write_bytes(msgspec.json.encode(spec))
                prefill_args = ["--prefill", str(path)]
            for i in range(replicas):
                for role in ("dialog", "egress"):
                    argv = worker(role, "--store", store, *prefill_args)
                    processes.append(Process(f"{role}{i + 1}", argv, self.log_dir, env))
            await asyncio.gather(*(p.start() for p in processes[1:]))
            split = await wait_balanced(db, settings, replicas) if replicas else ""
            url = activated.webhook_url
            if inbound_mode == "confirm":
                # Omnidesk's way: the customer writes in the case, a rule fires the webhook.
                rule = {"webhook_url": url, "on": "changed", "require_label": False}
                async with aiohttp.ClientSession() as session:
                    await session.delete(f"{self.sandbox_url}/sandbox/rules")
                    await session.post(f"{self.sandbox_url}/sandbox/rules", json=rule)
            pids: dict[str, list[int]] = {}
            for process in processes:
                assert process.process is not None
                pids.setdefault(process.name.rstrip("0123456789"), []).append(process.process.pid)
            yield Deployment(settings, url, channel.id, chosen, mongo_url, split, inbound_mode, pids)
        except BaseException:
            for process in processes:
                print(f"--- {process.name} log: {process.log_tail()[-1500:]}", file=sys.stderr)
            raise
        finally:
            if inbound_mode == "confirm":
                async with aiohttp.ClientSession() as session:
                    await session.delete(f"{self.sandbox_url}/sandbox/rules")
            await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)
            connection = await aio_pika.connect_robust(self.amqp_url)
            async with connection.channel() as channel_:
                await delete_topology(
                    channel_, Topology.build(settings.amqp_namespace, settings.chat_partitions)
                )
            await connection.close()
            await client.drop_database(settings.mongodb_db)
            await client.close()
            shutil.rmtree(settings.data_dir, ignore_errors=True)

    # -- sandbox side

    async def staff_messages(self, session: aiohttp.ClientSession, case_id: int) -> int:
        async with session.get(f"{self.sandbox_url}/sandbox/cases/{case_id}") as response:
            detail = await response.json()
        return sum(1 for m in detail["messages"] if m["staff_id"])

    async def arrivals(self, session: aiohttp.ClientSession) -> dict[str, float]:
        """Each reply's arrival in the sandbox (its request log, sandbox monotonic clock), by tag."""
        query = {"method": "POST", "path": r"^/api/cases/\d+/messages\.json$"}
        async with session.get(f"{self.sandbox_url}/sandbox/requests", params=query) as response:
            log = msgspec.json.decode(await response.read())
        arrived: dict[str, float] = {}
        for request in log["requests"]:
            content = ((request.get("json") or {}).get("message") or {}).get("content") or ""
            tag = content.split(" ", 1)[0]
            arrived.setdefault(tag, float(request["time"]))
        return arrived

    async def run(
        self,
        session: aiohttp.ClientSession,
        dep: Deployment,
        n: int,
        *,
        rate: float | None = None,
        prefix: str = "m",
    ) -> Burst:
        """One burst (or paced run) of n webhooks; waits for every reply (or a timeout)."""
        chosen = dep.items(n, prefix)
        url = dep.webhook_url
        if dep.inbound_mode == "confirm":
            url = f"{self.sandbox_url}/sandbox/customer-messages"
            items = [
                (tag, msgspec.json.encode({"case_id": case[0], "text": f"{tag} {FILLER}"}))
                for tag, case in chosen
            ]
        else:
            items = [(tag, webhook_body(tag, case)) for tag, case in chosen]
        last_case = chosen[-1][1][0]
        want_last = await self.staff_messages(session, last_case) + sum(
            1 for _, case in chosen if case[0] == last_case
        )
        async with session.delete(f"{self.sandbox_url}/sandbox/requests") as response:
            response.raise_for_status()
        if rate is None:
            sent = await send_burst(session, url, items, CONCURRENCY)
        else:
            sent = await send_paced(session, url, items, rate)
        deadline = time.monotonic() + 60 + n / 20
        # A long poll on the last message's chat first (cheap for the sandbox), then the log.
        wait = f"{self.sandbox_url}/sandbox/cases/{last_case}/wait"
        with contextlib.suppress(TimeoutError, aiohttp.ClientError):
            params = {
                "staff_messages": str(want_last),
                "timeout": str(max(1, int(deadline - time.monotonic()))),
            }
            async with session.get(wait, params=params) as response:
                await response.read()
        while True:
            arrived = await self.arrivals(session)
            if all(tag in arrived for tag in sent) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        burst = timed(sent, arrived)
        if burst.received < burst.sent:
            self.notes.append(
                f"a burst lost replies: {burst.received}/{burst.sent} arrived before the timeout"
            )
        return burst


async def wait_http(url: str, process: Process, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            assert process.process is not None
            if process.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} did not come up: {process.log_tail()}")
            await asyncio.sleep(0.1)


async def wait_balanced(db: AsyncDatabase[dict[str, Any]], settings: Settings, replicas: int) -> str:
    """Until both stages' replicas are live members and every partition's lease is held by the
    owner the services' rendezvous assignment names (then the burst may start). Returns the split,
    e.g. "inbound 5+3, outbound 4+4"."""
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions)
    stages = [topology.inbound.name, topology.outbound.name]
    deadline = time.monotonic() + 60
    while True:
        now = time.time()
        members = [d async for d in db.members.find({"seen_at": {"$gte": now - 4}})]
        leases = {
            str(d["_id"]): d["owner"]
            async for d in db.partition_leases.find({})
            if d.get("owner") and d.get("expires_at", 0) > now
        }
        splits, balanced = [], True
        for stage in stages:
            live = sorted(str(m["_id"]) for m in members if m.get("stage") == stage)
            owners = [leases.get(f"{stage}:{p}") for p in range(settings.chat_partitions)]
            expected = [
                rendezvous_owner(stage, p, live) if live else None for p in range(settings.chat_partitions)
            ]
            if len(live) != replicas or owners != expected:
                balanced = False
            counts = sorted((owners.count(m) for m in live), reverse=True)
            splits.append(f"{stage.rsplit('.', 1)[-1]} {'+'.join(map(str, counts))}")
        if balanced:
            await asyncio.sleep(1.5)  # the owner subscribes right after taking its lease
            return ", ".join(splits)
        if time.monotonic() > deadline:
            raise RuntimeError(f"partitions not shared out as assigned within 60 s: {splits}, {leases}")
        await asyncio.sleep(0.25)


async def insert_prefill(db: AsyncDatabase[dict[str, Any]], spec: Prefill) -> None:
    """The pre-filled chats, as MongoChatStore and MongoDeliveryStore write them, in bulk."""
    records, lines, cursors = prefilled(spec)

    def chat_doc(record: Any) -> dict[str, Any]:
        doc: dict[str, Any] = msgspec.to_builtins(record)
        doc["_id"] = doc.pop("key")
        return doc

    batches: list[tuple[Any, list[dict[str, Any]]]] = [
        (db.chats, [chat_doc(r) for r in records]),
        (db.transcripts, [{"_id": f"{x.chat}:{x.seq}", **msgspec.to_builtins(x)} for x in lines]),
        (
            db.delivery_cursors,
            [
                {"_id": c.key, "seq": c.seq, "last_message_id": c.last_message_id, "updated_at": c.updated_at}
                for c in cursors
            ],
        ),
    ]
    for collection, docs in batches:
        for start in range(0, len(docs), 1000):
            await collection.insert_many(docs[start : start + 1000], ordered=False)


# --- the report -----------------------------------------------------------------------------


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


# --- the benchmark --------------------------------------------------------------------------


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
            name: Process(
                f"minimal-{name}",
                [sys.executable, "-m", "bench.minimal_ingress", "--port", str(ports[name]), *args],
                bench.log_dir,
            )
            for name, args in flavours.items()
        }
        await asyncio.gather(*(p.start() for p in minimal.values()))
        urls = {name: f"http://127.0.0.1:{port}/webhooks/omnidesk/1/secret" for name, port in ports.items()}
        urls["ingress"] = dep.webhook_url
        servers = {"ingress": dep.pids["ingress"]}
        servers.update({name: [p.process.pid] for name, p in minimal.items() if p.process})
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
) -> dict[str, E2E]:
    """Several variants measured in turn (a burst of each, R times; then paced runs likewise), so
    that the machine's ups and downs fall on all of them alike."""
    results = {name: E2E() for name in variants}
    for dep in variants.values():
        await bench.run(session, dep, min(bench.sizes.warmup, burst // 4), prefix="w")
    for _ in range(bench.runs):
        for name, dep in variants.items():
            measured = await bench.run(session, dep, burst)
            results[name].rates.append(measured.rate)
            section(name)(f"burst: {measured.rate:,.0f}/s ({measured.received}/{measured.sent} replies)")
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


def report(rows: list[Row], bench: Bench, *, date: str, load: tuple[str, str], minutes: float) -> None:
    sizes = bench.sizes
    print(f"\n### Pipeline benchmark, {date}\n")
    print(
        f"Machine: {machine()}; RabbitMQ 3.10 on 127.0.0.1."
        f" Load average (1, 5, 15 min) before: {load[0]}; after: {load[1]}."
    )
    print(
        "The cores are shared, unpinned, by the load generator (one process), ingress, the dialog and"
        " egress replicas, the Omnidesk sandbox, the bare pipeline's three processes (idle outside"
        " their runs), RabbitMQ and SecantusDB."
    )
    print(
        f"Median of {bench.runs} run(s), each reference measured in the same run, interleaved."
        f" {CONCURRENCY} webhooks in flight; {sizes.ingress_requests:,} requests per ingress run;"
        f" end-to-end bursts of {sizes.burst:,} messages (in-memory) and {sizes.mongo_burst:,}"
        " (SecantusDB, the local MongoDB-protocol server, far slower than MongoDB); echo agent,"
        f" INBOUND_MODE=webhook, CHAT_PARTITIONS=8, prefetch 32. Took {minutes:.1f} min.\n"
    )
    print("| what | value | reference | ratio | target | result |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row.what} | {row.value} | {row.reference} | {row.ratio} | {row.target} | {row.result} |")
    for title, columns in bench.cpu.items():
        names = list(dict.fromkeys(row for column in columns.values() for row in column))
        print(f"\n| {title} | " + " | ".join(columns) + " |")
        print("|---|" + "---|" * len(columns))
        for name in [*names, "total"]:
            cells = []
            for column in columns.values():
                value = sum(column.values()) if name == "total" else column.get(name)
                cells.append("—" if value is None else f"{value:,.0f}")
            print(f"| {name} | " + " | ".join(cells) + " |")
    for note in bench.notes:
        print(f"\nNote: {note}")


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
    with mongo() as mongo_url, sandbox_process() as (sandbox_url, info):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2)) as session:
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
