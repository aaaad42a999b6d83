"""The processes `bench/pipeline_bench.py` starts, each its own OS process so that it gets its own
interpreter and event loop (uvloop), as in production:

- `dialog` / `egress`: the real services (`serve_dialog`, `serve_egress`), configured from the
  environment like `omnibot run`, with `--store memory` replacing the chat store (dialog) or the
  delivery cursors (egress) by in-memory stores, optionally pre-filled with chats (`--prefill
  FILE`); `--store mongo` is exactly the production code path;
- `hop`: one hop of the bare aio-pika pipeline (consume a queue, republish persistent with
  publisher confirms, then ack), the reference the pipeline is compared with;
- `sink`: the end of the bare pipeline (consume and ack), standing where the sandbox stands in the
  real pipeline; it writes `<message_id> <time.monotonic()>` per arrival on stdout (the monotonic
  clock is system-wide on Linux, so the driver compares it with its own send times).

Each prints `ready` on stdout once it consumes, and stops cleanly on SIGTERM.
Also here: the echo agent and the chats the benchmark pre-fills (shared by the driver, which writes
them into MongoDB, and by the workers, which put them in their in-memory stores).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import msgspec
import uvloop

from omnibot.shared import metrics
from omnibot.shared.chats import ChatRecord, TranscriptLine
from omnibot.shared.deliveries import Cursor, MemoryDeliveryStore
from omnibot.shared.logs import configure_logging
from omnibot.shared.messages import chat_key
from omnibot.shared.settings import Settings, load_settings
from omnibot.shared.telemetry import configure_tracing, shutdown_tracing

# Answers every customer message with its text: one reply per message, matched by its text.
ECHO_AGENT: dict[str, Any] = {
    "format": "omnibot/agent@1",
    "name": "bench-echo",
    "start": "echo",
    "slots": [
        {"id": "echo", "type": "text", "text": "{{client_message}}", "next": "wait"},
        {"id": "wait", "type": "input", "variable": "m", "next": "echo"},
    ],
}


class Prefill(msgspec.Struct, kw_only=True):
    """Chats that already exist before the benchmark: `turns` exchanges each (a customer message
    and the bot's reply), with the transcript, the bounded redelivery and dedup lists full, and
    egress's cursor at the last reply."""

    channel_id: int
    agent_version: int
    chats: list[str]
    turns: int = 1
    history: dict[str, int] = {}  # chats with another number of exchanges behind them


def echo_state() -> dict[str, Any]:
    """The engine state of an echo chat that has answered at least two messages."""
    from omnibot.agents.agent import load_agent
    from omnibot.agents.engine import ChatState, CustomerMessage, TurnContext, step

    agent, _ = load_agent(ECHO_AGENT)
    ctx = TurnContext(runtime={"chat_id": "1", "channel_id": 1, "agent_name": agent.name})
    now = datetime.now(tz=UTC)
    state: ChatState | None = None
    for text in ("hello", "again"):
        state, _effects = step(agent, state, CustomerMessage(text=text), now, ctx)
    return msgspec.to_builtins(state)


def prefilled(spec: Prefill) -> tuple[list[ChatRecord], list[TranscriptLine], list[Cursor]]:
    state, now = echo_state(), time.time()
    records, lines, cursors = [], [], []
    for chat_id in spec.chats:
        key, turns = chat_key(spec.channel_id, chat_id), spec.history.get(chat_id, spec.turns)
        records.append(
            ChatRecord(
                key=key,
                channel_id=spec.channel_id,
                chat_id=chat_id,
                agent_name=str(ECHO_AGENT["name"]),
                agent_version=spec.agent_version,
                state=state,
                version=turns,
                out_seq=turns,
                recent_inbound=[uuid.uuid4().hex for _ in range(min(turns, 50))],
                recent_fingerprints=[(uuid.uuid4().hex[:32], now) for _ in range(min(turns, 20))],
                created_at=now - turns,
                updated_at=now,
            )
        )
        for turn in range(1, turns + 1):
            text = f"earlier message {turn}"
            lines.append(TranscriptLine(chat=key, seq=turn * 1000, role="customer", text=text, at=now))
            lines.append(TranscriptLine(chat=key, seq=turn * 1000 + 1, role="bot", text=text, at=now))
        cursors.append(Cursor(key=key, seq=turns, updated_at=now))
    return records, lines, cursors


class EncodedChatStore:
    """`MemoryChatStore`'s contract (shared/chats.py), keeping each document encoded, as a database
    would: loads and commits pay an encode/decode like a driver does, and the stored chats are
    bytes the garbage collector never scans. (`MemoryChatStore` keeps live objects: with 10,000
    chats, every full collection of the dialog process would walk them, an artifact that a real
    database out of the process does not cause.)"""

    def __init__(self) -> None:
        self.chats: dict[str, bytes] = {}
        self.versions: dict[str, int] = {}
        self.lines: dict[str, dict[int, bytes]] = {}

    async def load(self, key: str) -> ChatRecord | None:
        doc = self.chats.get(key)
        return None if doc is None else _record_decoder.decode(doc)

    async def commit(self, record: ChatRecord, expected_version: int) -> bool:
        if self.versions.get(record.key, 0) != expected_version:
            return False
        record.updated_at = time.time()
        self.chats[record.key] = _encoder.encode(record)
        self.versions[record.key] = record.version
        return True

    async def clear_pending(self, key: str, version: int) -> None:
        if self.versions.get(key) == version:
            record = _record_decoder.decode(self.chats[key])
            record.pending = []
            self.chats[key] = _encoder.encode(record)

    async def append_transcript(self, lines: list[TranscriptLine]) -> None:
        for line in lines:
            self.lines.setdefault(line.chat, {})[line.seq] = _encoder.encode(line)

    async def transcript(self, key: str, limit: int = 200) -> list[TranscriptLine]:
        lines = self.lines.get(key, {})
        return [_line_decoder.decode(lines[seq]) for seq in sorted(lines)][-limit:]


_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(ChatRecord)
_line_decoder = msgspec.json.Decoder(TranscriptLine)


def _load_prefill(path: str | None) -> Prefill | None:
    if not path:
        return None
    return msgspec.json.decode(Path(path).read_bytes(), type=Prefill)


async def _serve(run: Coroutine[Any, Any, None], ready: asyncio.Event, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(run)
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        await task  # raises what made it fail
        return
    print("ready", flush=True)
    await task


def _configure_process(settings: Settings, role: str) -> None:
    """What `omnibot run` sets up before its services: logging, metrics (off with
    METRICS_ENABLED=false) and tracing (on only when OTEL_EXPORTER_OTLP_* is set)."""
    configure_logging(settings.log_level, "text")
    metrics.configure(enabled=settings.metrics_enabled)
    configure_tracing(role)


async def dialog(store: str, prefill: Prefill | None) -> None:
    from omnibot.dialog.service import serve_dialog

    settings = load_settings()
    _configure_process(settings, "dialog")
    chats = None
    if store == "memory":
        chats = EncodedChatStore()
        if prefill is not None:
            records, lines, _ = prefilled(prefill)
            for record in records:
                await chats.commit(record, 0)
            await chats.append_transcript(lines)
    stop, ready = asyncio.Event(), asyncio.Event()
    try:
        await _serve(serve_dialog(settings, stop, ready=ready, chats=chats), ready, stop)
    finally:
        shutdown_tracing()


async def egress(store: str, prefill: Prefill | None) -> None:
    from omnibot.egress.service import serve_egress

    settings = load_settings()
    _configure_process(settings, "egress")
    deliveries = None
    if store == "memory":
        # Its cursors are scalar-only structs, which the garbage collector does not track.
        deliveries = MemoryDeliveryStore()
        if prefill is not None:
            for cursor in prefilled(prefill)[2]:
                deliveries.cursors[cursor.key] = cursor
    stop, ready = asyncio.Event(), asyncio.Event()
    try:
        await _serve(serve_egress(settings, stop, ready=ready, deliveries=deliveries), ready, stop)
    finally:
        shutdown_tracing()


async def hop(amqp_url: str, source: str, target: str, prefetch: int) -> None:
    """Consume `source`, republish each message to `target` (persistent, confirmed), then ack."""
    stop, ready = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        connection = await aio_pika.connect_robust(amqp_url)
        try:
            publish = await connection.channel(publisher_confirms=True)
            consume = await connection.channel()
            await consume.set_qos(prefetch_count=prefetch)
            queue = await consume.get_queue(source, ensure=False)

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                await publish.default_exchange.publish(
                    aio_pika.Message(
                        message.body,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=message.message_id,
                        content_type="application/json",
                    ),
                    routing_key=target,
                )
                await message.ack()

            await queue.consume(on_message)
            ready.set()
            await stop.wait()
        finally:
            await connection.close()

    await _serve(run(), ready, stop)


async def sink(amqp_url: str, source: str, prefetch: int) -> None:
    """Consume and ack `source`, reporting each arrival on stdout (flushed every 20 ms)."""
    stop, ready = asyncio.Event(), asyncio.Event()
    out: list[str] = []

    async def flush() -> None:
        while True:
            await asyncio.sleep(0.02)
            if out:
                sys.stdout.write("".join(out))
                sys.stdout.flush()
                out.clear()

    async def run() -> None:
        connection = await aio_pika.connect_robust(amqp_url)
        flusher = asyncio.create_task(flush())
        try:
            consume = await connection.channel()
            await consume.set_qos(prefetch_count=prefetch)
            queue = await consume.get_queue(source, ensure=False)

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                out.append(f"{message.message_id} {time.monotonic()!r}\n")
                await message.ack()

            await queue.consume(on_message)
            ready.set()
            await stop.wait()
        finally:
            flusher.cancel()
            await connection.close()

    await _serve(run(), ready, stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="role", required=True)
    for name in ("dialog", "egress"):
        role = sub.add_parser(name)
        role.add_argument("--store", choices=["memory", "mongo"], default="memory")
        role.add_argument("--prefill", help="JSON file: chats to put in the in-memory store first")
    hop_parser = sub.add_parser("hop")
    hop_parser.add_argument("--amqp-url", required=True)
    hop_parser.add_argument("--source", required=True)
    hop_parser.add_argument("--target", required=True)
    hop_parser.add_argument("--prefetch", type=int, default=64)
    sink_parser = sub.add_parser("sink")
    sink_parser.add_argument("--amqp-url", required=True)
    sink_parser.add_argument("--source", required=True)
    sink_parser.add_argument("--prefetch", type=int, default=64)
    args = parser.parse_args()
    if args.role == "sink":
        uvloop.run(sink(args.amqp_url, args.source, args.prefetch))
    elif args.role == "hop":
        uvloop.run(hop(args.amqp_url, args.source, args.target, args.prefetch))
    elif args.role == "dialog":
        uvloop.run(dialog(args.store, _load_prefill(args.prefill)))
    else:
        uvloop.run(egress(args.store, _load_prefill(args.prefill)))
    sys.exit(0)


if __name__ == "__main__":
    main()
