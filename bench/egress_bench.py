"""Benchmark of egress: replies delivered per second by one egress process to the sandbox.

Run: `.venv/bin/python -m bench.egress_bench [--replies N] [--chats C] [--runs R]`.

Both sides post the same N replies (C chats, N/C replies each, in order per chat) to the same
sandbox Omnidesk, which runs as its own process with its rate limit lifted, in the same run:
- `bare aiohttp`: a plain client posting the JSON replies with 64 requests in flight (egress gets
  the same: 8 partitions x prefetch 8): the limit
  of this sandbox and this HTTP stack;
- `egress`: the real egress service (`serve_egress`) consuming the replies from RabbitMQ: per-chat
  cursors and ordering, the rate limiter, read of the channel, acks. Its delivery cursors are kept
  in memory (`MemoryDeliveryStore`), isolating the MongoDB-protocol server (see environment.md);
  only the channel is read from it, once.
Reported: the median of R runs of each, and egress as a share of bare (target: at least 70%).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import aio_pika
import aiohttp
import uvloop
from pymongo import AsyncMongoClient

from bench.common import bench_settings, machine, mongo
from omnibot.admin.operations import Management
from omnibot.egress.deliver import Deliverer
from omnibot.egress.download import FileDownloader
from omnibot.egress.service import serve_egress
from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.channels import Channel
from omnibot.shared.crypto import SecretBox, generate_key
from omnibot.shared.deliveries import MemoryDeliveryStore
from omnibot.shared.messages import OutboundAction, SendText, chat_key, encoder
from omnibot.shared.net.policy import NetworkPolicy
from omnibot.shared.omnidesk import OmnideskClient
from omnibot.shared.ratelimit import AccountThrottle
from omnibot.shared.settings import Settings
from omnibot.shared.settle import RetryPolicy
from omnibot.shared.topology import Topology, declare_topology, delete_topology
from omnibot.testkit.sandbox import SandboxClient, sandbox_process

TARGET = 0.70


async def open_cases(url: str, chats: int) -> list[int]:
    cases = []
    async with aiohttp.ClientSession() as session:
        for i in range(chats):
            body = {"text": "hi", "user": {"name": f"c{i}", "email": f"c{i}@bench.local"}}
            async with session.post(f"{url}/sandbox/customer-messages", json=body) as response:
                cases.append(int((await response.json())["case_id"]))
    return cases


async def bare(url: str, info: dict[str, Any], cases: list[int], per_chat: int) -> float:
    auth = aiohttp.encode_basic_auth(str(info["bot_email"]), str(info["api_key"]))
    jobs = [(case, n) for n in range(per_chat) for case in cases]
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            case, n = queue.get_nowait()
            body = {
                "message": {
                    "staff_id": info["bot_staff_id"],
                    "content": f"reply {n}",
                    "content_html": f"<p>reply {n}</p>",
                }
            }
            async with session.post(
                f"{url}/api/cases/{case}/messages.json", json=body, headers={"Authorization": auth}
            ) as r:
                assert r.status == 201, r.status
                await r.read()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(64)))
        return len(jobs) / (time.perf_counter() - started)


async def deliverer_only(url: str, info: dict[str, Any], cases: list[int], per_chat: int) -> float:
    """egress's delivery code alone (rate limiter, per-chat ordering and cursors, staff lookup,
    rendering), 64 chats in flight, each chat's replies in order: what the ratio target is about."""
    box = SecretBox(generate_key())
    channel = Channel(
        id=1,
        domain=url,
        email=str(info["bot_email"]),
        api_key_enc=box.encrypt(str(info["api_key"])),
        webhook_secret_enc="",
        webhook_secret_hash="",
        agent="b",
        active=True,
    )

    async def lookup(_: int) -> Channel:
        return channel

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        deliverer = Deliverer(
            client=OmnideskClient(session, AccountThrottle()),
            channels=ChannelDirectory(lookup),
            deliveries=MemoryDeliveryStore(),
            secrets=box,
            files=FileDownloader(NetworkPolicy.from_setting("")),
            policy=RetryPolicy(mode="delayed", max_attempts=3),
        )
        chats: asyncio.Queue[int] = asyncio.Queue()
        for case in cases:
            chats.put_nowait(case)

        async def worker() -> None:
            while not chats.empty():
                case = chats.get_nowait()
                for n in range(1, per_chat + 1):
                    action = SendText(
                        action_id=f"1:{case}:{n}",
                        channel_id=1,
                        chat_id=str(case),
                        seq=n,
                        created_at=0,
                        text=f"reply {n}",
                    )
                    await deliverer.deliver(action, attempt=1, maybe_done=False)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(64)))
        return len(cases) * per_chat / (time.perf_counter() - started)


async def egress(settings: Settings, channel_id: int, cases: list[int], per_chat: int) -> float:
    topology = Topology.build(settings.amqp_namespace, settings.chat_partitions)
    connection = await aio_pika.connect_robust(settings.amqp_url)
    total = len(cases) * per_chat
    done = asyncio.Event()
    delivered = 0

    async def count(_: OutboundAction) -> None:
        nonlocal delivered
        delivered += 1
        if delivered == total:
            done.set()

    try:
        async with connection.channel(publisher_confirms=True) as channel:
            await declare_topology(channel, topology)
            exchange = await channel.get_exchange(topology.outbound.name)
            for n in range(1, per_chat + 1):
                for case in cases:
                    action = SendText(
                        action_id=f"{channel_id}:{case}:{n}",
                        channel_id=channel_id,
                        chat_id=str(case),
                        seq=n,
                        created_at=0,
                        text=f"reply {n}",
                    )
                    key = chat_key(channel_id, str(case))
                    message = aio_pika.Message(
                        encoder.encode(action),
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        headers={"chat_key": key},
                    )
                    await exchange.publish(message, routing_key=topology.outbound.route(key))
        stop = asyncio.Event()
        ready = asyncio.Event()
        task = asyncio.create_task(
            serve_egress(settings, stop, ready=ready, deliveries=MemoryDeliveryStore(), on_delivered=count)
        )
        await ready.wait()
        started = time.perf_counter()
        await asyncio.wait_for(done.wait(), 600)
        rate = total / (time.perf_counter() - started)
        stop.set()
        await task
        return rate
    finally:
        async with connection.channel() as channel:
            await delete_topology(channel, topology)
        await connection.close()


async def main(replies: int, chats: int, runs: int) -> None:
    per_chat = max(1, replies // chats)
    with mongo() as mongo_url:
        async with (
            sandbox_process(per_minute=10**9) as (url, info),
            aiohttp.ClientSession() as control_session,
        ):
            control = SandboxClient(control_session, url)
            bare_rates: list[float] = []
            deliverer_rates: list[float] = []
            egress_rates: list[float] = []
            for _ in range(runs):
                # 8 partitions x prefetch 8: at most 64 in flight, as many as the bare client keeps.
                settings = bench_settings(mongo_url, egress_prefetch=8, chat_partitions=8)
                client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
                ops = Management(client[settings.mongodb_db], SecretBox(settings.secret_key), settings)
                await ops.agents.import_agent(
                    b'{"format":"omnibot/agent@1","name":"b","start":"e","slots":[{"id":"e","type":"end"}]}',
                    publish=True,
                )
                channel = await ops.channels.create_channel(
                    domain=url, api_key=str(info["api_key"]), email=str(info["bot_email"]), agent="b"
                )
                await control.reset()
                await control.set_rate_limit(10**9)
                cases = await open_cases(url, chats)
                bare_rates.append(await bare(url, info, cases, per_chat))
                deliverer_cases = await open_cases(url, chats)  # cases of its own: cursors start at 0
                deliverer_rates.append(await deliverer_only(url, info, deliverer_cases, per_chat))
                egress_rates.append(await egress(settings, channel.id, cases, per_chat))
                await client.drop_database(settings.mongodb_db)
                await client.close()
                print(
                    f"  run: bare {bare_rates[-1]:,.0f}/s, delivery code {deliverer_rates[-1]:,.0f}/s, "
                    f"egress service {egress_rates[-1]:,.0f}/s",
                    flush=True,
                )
    b, d, e = (statistics.median(r) for r in (bare_rates, deliverer_rates, egress_rates))
    print(f"\negress benchmark: {chats} chats x {per_chat} replies, median of {runs} runs; {machine()}")
    rows = [
        ("bare aiohttp client, 64 in flight", b, ""),
        (
            "egress delivery code (rate limiter, ordering, cursors), 64 chats in flight",
            d,
            f"{d / b:.0%} (target {TARGET:.0%})",
        ),
        ("egress service from RabbitMQ (8 partitions x prefetch 8 = 64 in flight)", e, f"{e / b:.0%}"),
    ]
    print("| what | replies/s | of bare |")
    print("|---|---|---|")
    for what, rate, share in rows:
        print(f"| {what} | {rate:,.0f} | {share} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replies", type=int, default=3000)
    parser.add_argument("--chats", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    uvloop.run(main(args.replies, args.chats, args.runs))
