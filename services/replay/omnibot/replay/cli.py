"""`omnibot replay ...`: record live traffic, re-run a transcript, turn dead letters into one.

- `omnibot replay record --channel ID --out FILE [--seconds N]`: listen beside the running services
  and write what the channel's customers said and what the bot answered; the channel's agent is
  exported next to it (`FILE.agent.json`) and named in the header.
- `omnibot replay run FILE [--engine]`: play the customer lines again and compare what the bot
  produces now with the file, printing a diff. By default through the real pipeline: ingress,
  RabbitMQ, dialog, MongoDB and egress run in this process against a sandbox Omnidesk and a fake
  external service, in a namespace and database of their own that are removed afterwards.
  `--engine` plays them through the pure engine only.
- `omnibot replay from-dlq --channel ID --out FILE`: inbound dead letters of the channel as a
  transcript, to re-run once the cause is fixed.
Exit codes: 0 the same, 1 different (or refused), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
from pymongo import AsyncMongoClient

from omnibot.replay.compare import compare
from omnibot.replay.engine_runner import run_in_engine
from omnibot.replay.external import running_fake_external
from omnibot.replay.pipeline_runner import run_in_pipeline
from omnibot.replay.recorder import Recorder, from_dead_letters, record
from omnibot.replay.transcript import dump, load
from omnibot.shared import amqp
from omnibot.shared.deadletters import list_dead
from omnibot.shared.settings import Settings
from omnibot.shared.topology import Topology, delete_topology

EXIT_SAME, EXIT_DIFFERENT = 0, 1


def add_commands(sub: Any) -> None:
    replay = sub.add_parser("replay", help="record traffic, re-run transcripts").add_subparsers(
        dest="action", required=True
    )
    rec = replay.add_parser("record", help="record a channel's traffic as a transcript")
    rec.add_argument("--channel", type=int, required=True)
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    run = replay.add_parser("run", help="re-run a transcript and compare")
    run.add_argument("file", type=Path)
    run.add_argument("--engine", action="store_true", help="through the pure engine only")
    dlq = replay.add_parser("from-dlq", help="inbound dead letters of a channel as a transcript")
    dlq.add_argument("--channel", type=int, required=True)
    dlq.add_argument("--out", type=Path, required=True)


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "run":
        return asyncio.run(run_file(args.file, settings, engine_only=args.engine))
    if args.action == "record":
        return asyncio.run(record_channel(settings, args.channel, args.out, args.seconds))
    return asyncio.run(dead_letters_to_file(settings, args.channel, args.out))


async def run_file(path: Path, settings: Settings, *, engine_only: bool) -> int:
    transcript = load(path)
    if engine_only:
        produced = run_in_engine(transcript, path.parent)
    else:
        async with (
            _throwaway_pipeline(settings) as (isolated, sandbox_state, sandbox_url),
            running_fake_external() as (_, external_url),
        ):
            produced = await run_in_pipeline(
                transcript,
                path.parent,
                settings=isolated,
                sandbox_state=sandbox_state,
                sandbox_url=sandbox_url,
                external_url=external_url,
            )
    diff = compare(transcript, produced)
    if diff is None:
        print(f"{path}: the bot answers as recorded ({len(transcript.events)} lines)")
        return EXIT_SAME
    print(diff)
    return EXIT_DIFFERENT


async def record_channel(
    settings: Settings, channel_id: int, out: Path, seconds: float | None, stop: asyncio.Event | None = None
) -> int:
    agent_file = out.with_name(out.name + ".agent.json")
    await asyncio.to_thread(agent_file.write_bytes, await _export_channel_agent(settings, channel_id))
    recorder = Recorder(channel_id, dedup_window_s=settings.dedup_window_s)
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if seconds is not None:
        loop.call_later(seconds, stop.set)
    connection = await amqp.connect(settings.amqp_url, name="omnibot-replay-record")
    try:
        print(f"recording channel {channel_id} (Ctrl-C to stop)...", file=sys.stderr)
        await record(
            connection, Topology.build(settings.amqp_namespace, settings.chat_partitions), recorder, stop
        )
    finally:
        await connection.close()
    await asyncio.to_thread(out.write_text, dump(recorder.transcript(agent_file.name)))
    print(f"{out}: {len(recorder.events)} lines; agent in {agent_file}", file=sys.stderr)
    return EXIT_SAME


async def dead_letters_to_file(settings: Settings, channel_id: int, out: Path) -> int:
    connection = await amqp.connect(settings.amqp_url, name="omnibot-replay-dlq")
    try:
        topology = Topology.build(settings.amqp_namespace, settings.chat_partitions)
        dead = await list_dead(connection, topology, ("inbound",))
    finally:
        await connection.close()
    agent_file = out.with_name(out.name + ".agent.json")
    await asyncio.to_thread(agent_file.write_bytes, await _export_channel_agent(settings, channel_id))
    recorder = from_dead_letters(channel_id, (letter.body for letter in dead))
    await asyncio.to_thread(out.write_text, dump(recorder.transcript(agent_file.name)))
    print(f"{out}: {len(recorder.events)} customer lines from {len(dead)} dead letters", file=sys.stderr)
    return EXIT_SAME


async def _export_channel_agent(settings: Settings, channel_id: int) -> bytes:
    from omnibot.admin.operations import Management, Refused
    from omnibot.shared.crypto import SecretBox, dev_secret_key
    from omnibot.shared.mongo import open_client

    client = open_client(settings)
    try:
        ops = Management(
            client[settings.mongodb_db],
            SecretBox(settings.secret_key or dev_secret_key(settings.data_dir)),
            settings,
        )
        channel = await ops.channels.show_channel(channel_id)
        return await ops.agents.export_agent(channel.agent)
    except Refused as exc:
        raise SystemExit(f"omnibot: {exc}") from None
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def _throwaway_pipeline(settings: Settings) -> AsyncIterator[tuple[Settings, Any, str]]:
    """ingress, dialog and egress in this process, with a sandbox, in a namespace of their own."""
    from omnibot.shared.crypto import generate_key
    from omnibot.shared.mongo import mongodb_url
    from omnibot.testkit.ports import free_port
    from omnibot.testkit.sandbox import running_sandbox
    from omnibot.testkit.services import running_services

    run = uuid.uuid4().hex[:8]
    ingress_port = free_port()
    isolated = msgspec.structs.replace(
        settings,
        amqp_namespace=f"replay-{run}",
        mongodb_url=mongodb_url(settings),
        mongodb_db=f"omnibot_replay_{run}",
        public_base_url=f"http://127.0.0.1:{ingress_port}",
        ingress_host="127.0.0.1",
        ingress_port=ingress_port,
        secret_key=generate_key(),
        omnidesk_allow_http=True,
        external_request_allow_networks="127.0.0.0/8",
        data_dir=tempfile.mkdtemp(prefix="omnibot-replay-"),
    )
    try:
        async with running_sandbox() as (state, sandbox_url), running_services(isolated, ready_timeout=30):
            yield isolated, state, sandbox_url
    finally:
        await _clean_up(isolated)


async def _clean_up(settings: Settings) -> None:
    connection = await amqp.connect(settings.amqp_url, name="omnibot-replay-clean-up")
    try:
        async with connection.channel() as channel:
            await delete_topology(channel, Topology.build(settings.amqp_namespace, settings.chat_partitions))
    finally:
        await connection.close()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    try:
        await client.drop_database(settings.mongodb_db)
    finally:
        await client.close()
