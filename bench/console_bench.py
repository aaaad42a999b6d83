"""Page load times of the web console with 10,000 chats (a script, not a test).

Fills a fresh database with one channel, one agent, 10,000 chats (each with a short transcript,
its delivery cursor and its two delivered replies, over the last few days) and some audit
entries, starts the admin service in this process, signs in over HTTP and loads every main page
several times; prints the median and the slowest of each, slowest page first.
The figures are server-side (request to last byte, on this machine's loopback), against the
MongoDB-protocol server given (MONGODB_URL, else the local SecantusDB, which is far slower than
real MongoDB: the figures are store-bound).

    .venv/bin/python -m bench.console_bench [--chats 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from pathlib import Path

import aiohttp
import msgspec
from pymongo import AsyncMongoClient

from bench.common import bench_settings, machine, mongo
from omnibot.admin.audit import MongoAuditLog
from omnibot.admin.operations import Management
from omnibot.admin.service import serve_admin
from omnibot.admin.users import MongoUserStore
from omnibot.shared.chats import ChatRecord, TranscriptLine
from omnibot.shared.crypto import SecretBox
from omnibot.shared.deliveries import Cursor
from omnibot.shared.devmongo import free_port
from omnibot.shared.settings import Settings

AGENT = Path(__file__).resolve().parent.parent / "examples" / "agents" / "support-demo.json"
EMAIL, PASSWORD = "bench@example.com", "bench-password-1"


async def fill(settings: Settings, chats: int) -> tuple[int, str]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    db = client[settings.mongodb_db]
    ops = Management(db, SecretBox(settings.secret_key), settings)
    agent = await ops.agents.import_agent(AGENT.read_bytes(), publish=True)
    channel = await ops.channels.create_channel(
        domain="https://bench.omnidesk.ru", api_key="bench-key-123456", email="bot@bench.ru", agent=agent.name
    )
    await MongoUserStore(db).create(EMAIL, "admin", PASSWORD)
    audit = MongoAuditLog(db)
    for i in range(200):
        await audit.record(EMAIL, "channel.update", str(channel.id), f"change {i}")
    now = time.time()
    batch: list[dict[str, object]] = []
    lines: list[dict[str, object]] = []
    cursors: list[dict[str, object]] = []
    for i in range(chats):
        key = f"{channel.id}:{100000 + i}"
        at = now - i * 30
        record = ChatRecord(
            key=key,
            channel_id=channel.id,
            chat_id=str(100000 + i),
            agent_name=agent.name,
            agent_version=1,
            owner="operator" if i % 7 == 0 else "bot",
            state={"slot": "menu", "waiting": "reply", "variables": {"order_id": str(i)}},
            version=3,
            last_error="Omnidesk answered 500" if i % 997 == 0 else "",
            created_at=at,
            updated_at=at,
        )
        doc = msgspec.to_builtins(record)
        doc["_id"] = doc.pop("key")
        batch.append(doc)
        for n, (role, text) in enumerate(
            (("customer", "Привет"), ("bot", "Здравствуйте!"), ("bot", "Чем помочь?"))
        ):
            line = TranscriptLine(chat=key, seq=1000 + n, role=role, text=text, at=at + n)  # type: ignore[arg-type]
            lines.append({"_id": f"{key}:{line.seq}", **msgspec.to_builtins(line)})
        # Two text replies delivered: the cursor as egress leaves it, with the day's tally.
        tally = Cursor(key=key).with_reply(at + 1)
        tally = Cursor(key=key, replies_day=tally.day, replies=tally.replies).with_reply(at + 2)
        cursors.append(
            {
                "_id": key,
                "seq": 2,
                "last_message_id": 0,
                "updated_at": at + 2,
                "replies_day": tally.day,
                "replies": tally.replies,
            }
        )
        if len(batch) >= 1000:
            await db.chats.insert_many(batch)
            await db.transcripts.insert_many(lines)
            await db.delivery_cursors.insert_many(cursors)
            batch, lines, cursors = [], [], []
    if batch:
        await db.chats.insert_many(batch)
        await db.transcripts.insert_many(lines)
        await db.delivery_cursors.insert_many(cursors)
    await client.close()
    return channel.id, agent.name


async def sign_in(session: aiohttp.ClientSession, base: str) -> None:
    async with session.get(f"{base}/sign-in") as answer:
        csrf = re.search(r'name="_csrf" value="([^"]+)"', await answer.text())
    assert csrf is not None
    form = {"_csrf": csrf.group(1), "email": EMAIL, "password": PASSWORD, "next": "/"}
    async with session.post(f"{base}/sign-in", data=form, allow_redirects=False) as answer:
        assert answer.status == 303, answer.status


async def measure(chats: int, runs: int) -> None:
    with mongo() as url:
        settings = bench_settings(url, admin_port=free_port())
        started = time.perf_counter()
        channel, agent = await fill(settings, chats)
        print(f"filled {chats} chats in {time.perf_counter() - started:.1f} s")
        stop, ready = asyncio.Event(), asyncio.Event()
        service = asyncio.create_task(serve_admin(settings, stop, ready=ready))
        await asyncio.wait_for(ready.wait(), 30)
        base = f"http://127.0.0.1:{settings.admin_port}"
        pages = {
            "Overview /": "/",
            "Channels": "/channels",
            "Channel page": f"/channels/{channel}",
            "Agents": "/agents",
            "Agent version (diagram page)": f"/agents/{agent}/versions/1",
            "Flow diagram SVG": f"/agents/{agent}/versions/1/diagram.svg",
            "Chats, first page": f"/chats?channel={channel}",
            "Chats, owner=operator": f"/chats?channel={channel}&owner=operator",
            "Chats, last page": f"/chats?channel={channel}&offset={chats - 50}",
            "Chats, within 1h": f"/chats?channel={channel}&within=1h",
            "Chat page": f"/channels/{channel}/chats/{100000 + chats // 2}",
            "Dead letters": "/dead-letters",
            "Audit log": "/audit",
        }
        results: list[tuple[float, float, str]] = []
        # unsafe: the jar keeps cookies of an IP address (127.0.0.1)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            await sign_in(session, base)
            for name, path in pages.items():
                times = []
                status = 0
                for _ in range(runs):
                    t = time.perf_counter()
                    async with session.get(base + path) as answer:
                        await answer.read()
                        # 503: the dead-letter page when RabbitMQ does not answer (it says so).
                        assert answer.status in (200, 503), (path, answer.status)
                        status = answer.status
                    times.append((time.perf_counter() - t) * 1000)
                label = name if status == 200 else f"{name} (503: RabbitMQ unavailable)"
                results.append((statistics.median(times), max(times), label))
        stop.set()
        await service
    print(f"console page loads with {chats} chats, {runs} runs each, on {machine()}, MongoDB: {url}")
    print(f"{'page':32} {'median ms':>10} {'max ms':>8}")
    for median, worst, name in sorted(results, reverse=True):
        print(f"{name:32} {median:10.1f} {worst:8.1f}")
    print(f"slowest: {max(results)[2]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(measure(args.chats, args.runs))


if __name__ == "__main__":
    main()
