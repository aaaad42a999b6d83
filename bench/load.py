"""The load generator: webhooks sent in bursts or paced, and the times they were sent and answered."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

import aiohttp
import msgspec

from bench.sizes import FILLER, JSON_HEADERS


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


Send = Callable[[str, bytes], Awaitable[None]]


async def burst_of(send: Send, items: Sequence[tuple[str, bytes]], concurrency: int) -> dict[str, float]:
    """`send` every item with `concurrency` in flight. Send times by tag."""
    sent: dict[str, float] = {}
    queue = iter(items)

    async def worker() -> None:
        for tag, body in queue:
            sent[tag] = time.monotonic()
            await send(tag, body)

    with collector_paused():
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


async def paced_at(send: Send, items: Sequence[tuple[str, bytes]], rate: float) -> dict[str, float]:
    """Open loop: item i is sent at start + i / rate, whatever the answers before it."""
    sent: dict[str, float] = {}

    async def one(tag: str, body: bytes) -> None:
        sent[tag] = time.monotonic()
        await send(tag, body)

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


def poster(session: aiohttp.ClientSession, url: str) -> Send:
    """Sending as a webhook: POST the body to `url`; it must be answered 200."""

    async def send(tag: str, body: bytes) -> None:
        await post_one(session, url, body)

    return send


async def send_burst(
    session: aiohttp.ClientSession, url: str, items: Sequence[tuple[str, bytes]], concurrency: int
) -> dict[str, float]:
    """POST every body with `concurrency` in flight; each must be answered 200. Send times by tag."""
    return await burst_of(poster(session, url), items, concurrency)


async def send_paced(
    session: aiohttp.ClientSession, url: str, items: Sequence[tuple[str, bytes]], rate: float
) -> dict[str, float]:
    """Open loop: item i is POSTed at start + i / rate, whatever the answers before it."""
    return await paced_at(poster(session, url), items, rate)


async def request_rate(
    session: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], concurrency: int
) -> float:
    items = [(str(i), body) for i, body in enumerate(bodies)]
    started = time.perf_counter()
    await send_burst(session, url, items, concurrency)
    return len(items) / (time.perf_counter() - started)
