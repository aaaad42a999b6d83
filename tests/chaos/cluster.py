"""The processes of a chaos run, and the faults done to them.

Everything runs as a real OS process with its own log file, as in production: the MongoDB-protocol
server (with a storage directory, so that a restart keeps the data), the Omnidesk sandbox, one
ingress, two dialog and two egress replicas (`python -m omnibot.launcher run NAME`, each with the
environment of one `Settings`). RabbitMQ is never the machine's shared broker: the suite starts
nodes of its own (nodes.py), one for the single-node scenarios, three clustered for the others,
and every process reaches them through `AMQP_URL` (several URLs for a cluster, each process
starting at another node, through a TCP proxy per node that the suite can cut). Each dialog and
egress replica can also reach MongoDB through a proxy of its own, to cut one replica off.

Faults are plain async functions that return when the fault is over: a replica killed with
SIGKILL (and a replacement started, as Kubernetes would), the broker's application stopped and
started, the database server stopped and started, the sandbox's API down for a while, a replica
black-holed from MongoDB, a broker node SIGKILLed, every node restarted in turn, the network path
to one node cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import msgspec

from omnibot.shared.crypto import generate_key
from omnibot.shared.devmongo import start_server, wait_until_up
from omnibot.shared.settings import Settings
from omnibot.shared.topology import Topology, delete_topology
from omnibot.testkit.channels import management
from omnibot.testkit.ports import free_port
from omnibot.testkit.processes import ChildProcess, ServiceProcess, child_env
from omnibot.testkit.sandbox import SandboxClient, SandboxProcess
from tests.chaos.nodes import RabbitNode
from tests.tcpproxy import TcpProxy

AGENT_FILE = Path(__file__).parent / "agents" / "echo.json"
EVIDENCE = {
    "dialog": ("redelivered message", "republishing", "retrying in"),
    "egress": ("found in Omnidesk already", "already performed", "retrying in"),
}
POLL_S = 0.1  # how often state outside this process (logs, the sandbox) is looked at


class ChaosError(AssertionError):
    """The cluster did not do what a step needed (a process did not start, a fault did not land)."""


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Wait until an async check holds. For state in other processes, where there is no event to
    wait on: polls every POLL_S and gives up with a clear message."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise ChaosError(f"{what} did not happen within {timeout:.0f}s")
        await asyncio.sleep(POLL_S)


class Cluster:
    """Every process of the run; replicas come and go, their logs stay for the report."""

    def __init__(
        self,
        log_dir: Path,
        http: aiohttp.ClientSession,
        nodes: list[RabbitNode],
        *,
        node_proxies: bool = False,
        mongo_proxies: bool = False,
    ) -> None:
        self.log_dir = log_dir
        self.http = http
        self.nodes = nodes
        self.node_proxies: list[TcpProxy] = (
            [TcpProxy("127.0.0.1", node.port) for node in nodes] if node_proxies else []
        )
        self.mongo_proxies: dict[str, TcpProxy] | None = {} if mongo_proxies else None
        self.mongo_port = free_port()
        self.mongo_storage = log_dir / "mongo-data"
        self.mongo_storage.mkdir()
        ingress_port, sandbox_port = free_port(), free_port()
        unique = uuid.uuid4().hex[:10]
        self.settings = Settings(
            amqp_url=nodes[0].url,
            amqp_namespace=f"chaos-{unique}",
            mongodb_url=f"mongodb://127.0.0.1:{self.mongo_port}",
            mongodb_db="omnibot_chaos",
            public_base_url=f"http://127.0.0.1:{ingress_port}",
            ingress_host="127.0.0.1",
            ingress_port=ingress_port,
            secret_key=generate_key(),
            chat_partitions=4,
            omnidesk_allow_http=True,
            # Short enough that a reply held by the sandbox times out within the phase.
            omnidesk_timeout_s=5.0,
            sandbox_host="127.0.0.1",
            sandbox_port=sandbox_port,
            shutdown_timeout_s=2.0,
            data_dir=str(log_dir / "data"),
            # Every process of the cluster on its own free port: the default 9090 is one per machine.
            metrics_port=0,
        )
        self.sandbox_process = SandboxProcess(
            sandbox_port, log_dir / "sandbox.log", env=child_env(self.settings)
        )
        self.sandbox = SandboxClient(http, self.sandbox_process.url)
        # Started by the MongoDB-protocol server's own helper, adopted (start_mongo).
        self.mongo = ChildProcess("mongo", [], log_dir / "mongo.log")
        self.processes: list[ChildProcess] = [self.mongo]  # everything ever started, for the logs
        self.replicas: dict[str, list[ChildProcess]] = {"dialog": [], "egress": []}
        self._numbers = itertools.count(1)
        self.webhook_url = ""

    # -- starting ----------------------------------------------------------------------------

    def amqp_url_for(self, number: int) -> str:
        """Every node, the list starting at another one for each process (as a client library
        shuffling its addresses would), so that the processes spread over the nodes."""
        urls = (
            [f"amqp://guest:guest@127.0.0.1:{p.port}/" for p in self.node_proxies]
            if self.node_proxies
            else [node.url for node in self.nodes]
        )
        shift = number % len(urls)
        return ",".join(urls[shift:] + urls[:shift])

    async def _service(self, kind: str) -> ServiceProcess:
        number = next(self._numbers)
        name = f"{kind}-{number}"
        settings = msgspec.structs.replace(self.settings, amqp_url=self.amqp_url_for(number))
        if self.mongo_proxies is not None and kind in ("dialog", "egress"):
            proxy = await TcpProxy("127.0.0.1", self.mongo_port).start()
            self.mongo_proxies[name] = proxy
            # directConnection: the server announces itself as a replica-set member at its own
            # address, and a client following that would go round the proxy.
            mongodb_url = f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true"
            settings = msgspec.structs.replace(settings, mongodb_url=mongodb_url)
        process = ServiceProcess(kind, settings, self.log_dir, name=name)
        self.processes.append(process)
        return process

    async def start(self) -> None:
        for proxy in self.node_proxies:
            await proxy.start()
        self.start_mongo()
        self.processes.append(self.sandbox_process.start())
        await asyncio.to_thread(wait_until_up, self.mongo_port, self.mongo.popen, 30)
        ingress = await self._service("ingress")
        for kind in ("dialog", "dialog", "egress", "egress"):
            self.replicas[kind].append(await self._service(kind))
        info = await self.sandbox_process.wait_up(self.sandbox, 30)
        await ingress.wait_log("ingress listening", 60)
        for replica in self.replicas["dialog"] + self.replicas["egress"]:
            await replica.wait_log("consuming", 60)
        # Far above the stream's needs: this suite is about faults, not about Omnidesk's limits.
        await self.sandbox.set_rate_limit(1_000_000)
        self.webhook_url = await self._create_channel(info)

    async def _create_channel(self, info: dict[str, Any]) -> str:
        ops, client = await management(self.settings)
        try:
            agent = await ops.agents.import_agent(AGENT_FILE.read_bytes(), publish=True)
            channel = await ops.channels.create_channel(
                title="Chaos",
                domain=self.sandbox.url,
                api_key=info["api_key"],
                email=info["bot_email"],
                agent=agent.name,
                activate=True,
                bot_label_id=info["bot_label_id"],
            )
        finally:
            await client.close()
        if not channel.active:
            raise ChaosError(f"the channel did not activate: {channel.checks}")
        return channel.webhook_url

    def start_mongo(self) -> None:
        self.mongo.adopt(start_server(str(self.mongo_storage), self.mongo_port, self.mongo.log_path))

    # -- replicas ----------------------------------------------------------------------------

    async def busiest(self, kind: str, window_s: float = 1.0) -> ChildProcess:
        """The replica of `kind` that used most CPU over a short window: the one doing work now.

        Which replica handles which partitions is the replicas' business (single-active-consumer,
        leases); the suite only needs to hit one that is working, whichever that is.
        """
        replicas = self.replicas[kind]
        before = [r.cpu_seconds() for r in replicas]
        await asyncio.sleep(window_s)  # deliberate: the window over which activity is measured
        used = [r.cpu_seconds() - b for r, b in zip(replicas, before, strict=True)]
        return replicas[used.index(max(used))]

    async def replace(self, victim: ChildProcess) -> ChildProcess:
        """Start a replacement for a dead replica (what Kubernetes does) and wait until it consumes."""
        kind = victim.name.split("-")[0]
        self.replicas[kind].remove(victim)
        replacement = await self._service(kind)
        self.replicas[kind].append(replacement)
        await replacement.wait_log("consuming", 60)
        return replacement

    # -- reporting ---------------------------------------------------------------------------

    def logs(self) -> str:
        """The tail of every process's log, for assertion messages."""
        parts = []
        for process in self.processes:
            state = "running" if process.running else "exited/killed"
            parts.append(f"----- {process.name} ({state}) {process.log_path} -----\n{process.log_tail()}")
        return "\n".join(parts)

    def evidence(self) -> Counter[str]:
        """How often the replicas logged the recoveries a fault should provoke (for the notes:
        they show that a fault landed mid-work; the verdict never depends on them)."""
        counts: Counter[str] = Counter()
        for process in self.processes:
            kind = process.name.split("-")[0]
            text = process.log_text()
            for fragment in EVIDENCE.get(kind, ()):
                counts[f"{kind}: {fragment}"] += text.count(fragment)
        return counts

    # -- stopping ----------------------------------------------------------------------------

    async def stop(self) -> None:
        # The nodes are the fixture's: it stops them after this, whatever happened.
        for proxy in self.node_proxies:
            proxy.restore()
        services = [p for p in self.processes if p is not self.mongo]
        await asyncio.gather(*(process.stop(15) for process in services))  # in parallel
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._delete_topology(), 30)
        await self.mongo.stop(15)
        for proxy in [*self.node_proxies, *(self.mongo_proxies or {}).values()]:
            await proxy.close()

    async def _delete_topology(self) -> None:
        connection = await aio_pika.connect_robust(self.nodes[0].url)
        try:
            async with connection.channel() as channel:
                topology = Topology.build(self.settings.amqp_namespace, self.settings.chat_partitions)
                await delete_topology(channel, topology)
        finally:
            await connection.close()


# --- faults -----------------------------------------------------------------------------------
#
# Each returns when the fault is over (the moment recovery time is measured from) with a note on
# what exactly it did.

BROKER_DOWN_S = 5.0
DATABASE_DOWN_S = 5.0
OMNIDESK_DOWN_S = 20.0
HELD_REQUESTS = 6
MESSAGES_PATH = r"/api/cases/\d+/messages\.json"


async def hold_requests(cluster: Cluster, method: str, delay_s: float) -> None:
    """Make the sandbox perform the next HELD_REQUESTS `method`s on a case's messages but answer
    them only after `delay_s`, and return once all of them are being held: from then on, the
    replicas that sent them are in the middle of their work, waiting for Omnidesk."""
    fault = {"method": method, "path": MESSAGES_PATH, "responses": [{"delay_s": delay_s}]}
    await cluster.sandbox.add_fault({**fault, "times": HELD_REQUESTS})

    async def all_held() -> bool:
        return not await cluster.sandbox.pending_faults()

    await eventually(all_held, 20, f"{HELD_REQUESTS} {method}s held by the sandbox")


async def kill_dialog_replica(cluster: Cluster) -> str:
    victim = await cluster.busiest("dialog")
    # In confirm mode a turn starts by reading the case's messages; holding the answers (less than
    # the client's timeout) makes sure turns are in progress when the kill lands.
    await hold_requests(cluster, "GET", 3.0)
    victim.kill()
    replacement = await cluster.replace(victim)
    return f"SIGKILL {victim.name} (pid {victim.pid}) mid-turn; {replacement.name} started"


async def kill_egress_replica_mid_delivery(cluster: Cluster) -> str:
    victim = await cluster.busiest("egress")
    # Replies stored by Omnidesk but answered only after egress's own timeout: the kill lands while
    # POSTs are in flight whose effect the killed replica never learns of.
    await hold_requests(cluster, "POST", 30.0)
    victim.kill()
    replacement = await cluster.replace(victim)
    return f"SIGKILL {victim.name} (pid {victim.pid}) with replies in flight; {replacement.name} started"


async def restart_broker(cluster: Cluster) -> str:
    node = cluster.nodes[0]  # the suite's own node: never the machine's shared broker
    await node.stop_app()
    try:
        await asyncio.sleep(BROKER_DOWN_S)  # deliberate: the broker stays down this long
    finally:
        await node.start_app()
    return f"rabbitmqctl -n {node.name} stop_app, {BROKER_DOWN_S:.0f}s down, start_app + await_startup"


async def restart_database(cluster: Cluster) -> str:
    await cluster.mongo.stop(15)
    await asyncio.sleep(DATABASE_DOWN_S)  # deliberate: the database stays down this long
    cluster.start_mongo()
    await asyncio.to_thread(wait_until_up, cluster.mongo_port, cluster.mongo.popen, 30)
    return f"SIGTERM to the MongoDB-protocol server, {DATABASE_DOWN_S:.0f}s down, restarted on its storage"


async def omnidesk_outage(cluster: Cluster) -> str:
    await cluster.sandbox.start_outage(OMNIDESK_DOWN_S, 503)
    await asyncio.sleep(OMNIDESK_DOWN_S)  # deliberate: the outage lasts this long (it ends by itself)

    async def over() -> bool:
        return (await cluster.sandbox.outage()) is None

    await eventually(over, 5, "the end of the sandbox outage")
    return f"every Omnidesk API call answered 503 for {OMNIDESK_DOWN_S:.0f}s"


# --- a replica cut off from MongoDB -----------------------------------------------------------

BLACKHOLE_S = 15.0  # over twice the lease (6 s): the leases lapse and the others take over


def held_partitions(process: ChildProcess) -> set[int]:
    """The partitions a replica consumes now, from its own log (took / handed back / fenced)."""
    held: set[int] = set()
    for line in process.log_text().splitlines():
        if " took partition " in line:
            held.add(int(line.rsplit(" ", 1)[1]))
        elif " handed back partition " in line:
            held.discard(int(line.rsplit(" ", 1)[1]))
    return held


async def blackhole_dialog_from_mongodb(cluster: Cluster) -> str:
    """One dialog replica holding partitions loses MongoDB (not killed: its connections hang):
    its leases lapse, it must fence itself (stop consuming) and the other replica take over."""
    assert cluster.mongo_proxies is not None, "the cluster was started without MongoDB proxies"
    victim = await cluster.busiest("dialog")
    other = next(r for r in cluster.replicas["dialog"] if r is not victim)
    held = held_partitions(victim)
    if not held:
        raise ChaosError(f"{victim.name} holds no partition: nothing to fence")
    proxy = cluster.mongo_proxies[victim.name]
    fenced_before = victim.log_text().count("fencing partition")
    taken_before = other.log_text().count(" took partition ")
    proxy.blackhole()
    try:
        await victim.wait_log("fencing partition", BLACKHOLE_S, count=fenced_before + len(held))
        await other.wait_log(" took partition ", BLACKHOLE_S, count=taken_before + len(held))
        if not victim.running:
            raise ChaosError(f"{victim.name} died instead of fencing itself:\n{victim.log_tail()}")
        took = held_partitions(other)
        await asyncio.sleep(max(0.0, BLACKHOLE_S - 8))  # deliberate: stays cut off a while longer
    finally:
        proxy.restore()
    return (
        f"{victim.name}'s MongoDB path black-holed for about {BLACKHOLE_S:.0f}s while it held "
        f"partitions {sorted(held)}: it fenced them, {other.name} took them (now holds {sorted(took)})"
    )


# --- a cluster of RabbitMQ nodes --------------------------------------------------------------

NODE_DOWN_S = 5.0
CUT_S = 5.0


async def partition_leaders(cluster: Cluster, alive: RabbitNode) -> Counter[str]:
    """How many of the run's partition queues each node leads."""
    prefix = cluster.settings.amqp_namespace + "."
    leaders = await alive.leaders(prefix)
    return Counter(node for queue, node in leaders.items() if queue.rsplit(".", 1)[1].startswith("p"))


async def kill_leading_node(cluster: Cluster) -> str:
    """SIGKILL of the node leading most partition queues, mid-stream; restarted after a while."""
    counts = await partition_leaders(cluster, cluster.nodes[0])
    leader_name, led = counts.most_common(1)[0]
    victim = next(n for n in cluster.nodes if n.name == leader_name)
    survivor = next(n for n in cluster.nodes if n is not victim)
    victim.kill()
    await asyncio.sleep(NODE_DOWN_S)  # deliberate: the node stays dead this long
    after = await partition_leaders(cluster, survivor)
    await victim.start()
    await survivor.ctl("await_online_quorum_plus_one", "-t", "120", tool="rabbitmq-upgrade")
    return (
        f"SIGKILL {victim.label} (led {led} of {sum(counts.values())} partition queues), "
        f"{NODE_DOWN_S:.0f}s dead (leaders then: {dict(after)}), restarted"
    )


async def rolling_restart(cluster: Cluster) -> str:
    """Every node stopped and started again, one after the other, each once the queues can
    spare it (a quorum plus one of each queue's members online)."""
    for node in cluster.nodes:
        await node.ctl("await_online_quorum_plus_one", "-t", "120", tool="rabbitmq-upgrade")
        await node.stop()
        await node.start()
    return f"rabbitmqctl stop + start of {', '.join(n.label for n in cluster.nodes)}, one by one"


async def cut_node_path(cluster: Cluster) -> str:
    """The network path to one node cut (its proxy resets every connection and refuses new ones)
    for CUT_S: the processes connected through it must reconnect to another node."""
    proxy = max(cluster.node_proxies, key=lambda p: p.live)
    index = cluster.node_proxies.index(proxy)
    cut_off = proxy.live
    others_before = sum(p.connections for p in cluster.node_proxies if p is not proxy)
    proxy.cut()
    try:
        await asyncio.sleep(CUT_S)  # deliberate: the path stays cut this long
        moved = sum(p.connections for p in cluster.node_proxies if p is not proxy) - others_before
    finally:
        proxy.restore()
    if cut_off and not moved:
        raise ChaosError("no connection went to another node after the cut")
    return (
        f"path to node {cluster.nodes[index].label} cut for {CUT_S:.0f}s: {cut_off} connections reset, "
        f"{moved} new connections through the other nodes"
    )
