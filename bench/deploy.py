"""omnibot deployed for a run: ingress, dialog and egress replicas as processes, a channel on the
sandbox, chats that already exist; the bursts sent to it and the replies read back."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aio_pika
import aiohttp
import msgspec
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.bare import worker
from bench.common import bench_settings, mongo, spawn, started
from bench.cpu import find_pids
from bench.load import Burst, send_burst, send_paced, timed, webhook_body
from bench.pipeline_worker import ECHO_AGENT, Prefill, prefilled
from bench.sizes import CONCURRENCY, FILLER, Sizes, Store
from omnibot.admin.operations import Management
from omnibot.shared.crypto import SecretBox
from omnibot.shared.partitions import rendezvous_owner
from omnibot.shared.settings import Settings
from omnibot.shared.topology import QueueType, Topology, delete_topology
from omnibot.testkit.ports import free_port
from omnibot.testkit.processes import ChildProcess, child_env


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
    monitoring_url: str = ""  # ingress's monitoring listener (/metrics, /healthz, /readyz)

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
    queue_type: QueueType = "quorum"  # what the deployments declare (bench/queue_types.py compares)

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
        env: dict[str, str] | None = None,
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
                self._deploy(mongo_url, store, replicas, chats, history or {}, inbound_mode, env or {})
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
        extra_env: dict[str, str],
    ) -> AsyncIterator[Deployment]:
        port = free_port()
        settings = bench_settings(
            mongo_url,
            ingress_host="127.0.0.1",
            ingress_port=port,
            public_base_url=f"http://127.0.0.1:{port}",
            inbound_mode=inbound_mode,
            chat_partitions=8,
            amqp_queue_type=self.queue_type,
        )
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        db = client[settings.mongodb_db]
        processes: list[ChildProcess] = []
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
            env = {**child_env(settings), **extra_env}  # extra_env: e.g. tracing on (bench/observability.py)
            # Ingress's readiness is on its monitoring listener, never on the webhook port: a port
            # of its own here (the settings' 0 would take one nobody knows; it logs at INFO only).
            probes = free_port()
            ingress = spawn(
                "ingress",
                [sys.executable, "-m", "omnibot.launcher", "run", "ingress"],
                self.log_dir,
                {**env, "METRICS_PORT": str(probes)},
            )
            processes.append(ingress)
            ingress.start()
            await wait_http(f"http://127.0.0.1:{probes}/readyz", ingress)
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
                    processes.append(spawn(f"{role}{i + 1}", argv, self.log_dir, env))
            await asyncio.gather(*(started(p) for p in processes[1:]))
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
                pids.setdefault(process.name.rstrip("0123456789"), []).append(process.pid)
            yield Deployment(
                settings,
                url,
                channel.id,
                chosen,
                mongo_url,
                split,
                inbound_mode,
                pids,
                monitoring_url=f"http://127.0.0.1:{probes}",
            )
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


async def wait_http(url: str, process: ChildProcess, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            if not process.running or time.monotonic() > deadline:
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
