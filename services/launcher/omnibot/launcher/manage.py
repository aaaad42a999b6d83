"""The management commands of `omnibot`: arguments to one typed call of `Management`, run, printed.

`operation` maps the parsed arguments to a call on one area of `Management`; each call is written
out, so mypy checks its name and arguments. Answers are typed; they become JSON (`--json`) or text
only here, at the edge. A command that changed something is written to the audit log here, for
all of them (`omnibot.launcher.audit` names the entry), as the console and the API do.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from msgspec import UNSET

from omnibot.admin.operations import Management, Refused
from omnibot.admin.schemas import ChannelChanges, ChannelView, ReplayResult
from omnibot.launcher.audit import audit_entry, cli_actor
from omnibot.launcher.exits import EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from omnibot.launcher.render import json_text, render
from omnibot.shared.errors import OmnibotError
from omnibot.shared.settings import Settings

Answer = msgspec.Struct | bytes
Operation = Callable[[Management], Awaitable[Answer]]
# The audit entry (action, target, detail) of an answer; None: nothing changed.
Audit = Callable[[Answer], tuple[str, str, str] | None]


class Command(NamedTuple):
    call: Operation
    kind: str | None = None  # the kind of list answered, for the table's columns


class UsageError(Exception):
    pass


def operation(args: argparse.Namespace) -> Command:
    """The call the arguments ask for, and the kind of list it answers."""
    match args.command, args.action:
        case "secrets", "rotate":
            return Command(lambda m: m.secrets.rotate_secrets())
        case "agent", action:
            return _agent(action, args)
        case "channel", action:
            return _channel(action, args)
        case "chat", action:
            return _chat(action, args)
        case "dlq", "list":
            return Command(
                lambda m: m.dead_letters.list_dead_letters(
                    stage=args.stage, limit=args.limit, offset=args.offset
                ),
                "dead",
            )
        case "dlq", "replay":
            ids = None if args.all else list(args.ids)
            return Command(lambda m: m.dead_letters.replay_dead_letters(ids, stage=args.stage))
        case "status", _:
            return Command(lambda m: m.status.status(), "status")
    raise UsageError(f"unknown command: {args.command} {args.action}")


def _agent(action: str, args: argparse.Namespace) -> Command:
    name: str = getattr(args, "name", "")
    match action:
        case "import":
            raw = _file(args.file)
            publish: bool = args.publish
            return Command(lambda m: m.agents.import_agent(raw, publish=publish))
        case "validate":
            raw = _file(args.file)
            return Command(lambda m: m.agents.validate_agent(raw))
        case "publish":
            return Command(lambda m: m.agents.publish_agent(name, args.version))
        case "export":
            return Command(lambda m: m.agents.export_agent(name, args.version))
        case "versions":
            return Command(
                lambda m: m.agents.list_agent_versions(name, limit=args.limit, offset=args.offset), "versions"
            )
        case "delete":
            return Command(lambda m: m.agents.delete_agent(name))
        case "list":
            return Command(lambda m: m.agents.list_agents(limit=args.limit, offset=args.offset), "agents")
    raise UsageError(f"unknown command: agent {action}")


def _channel(action: str, args: argparse.Namespace) -> Command:
    match action:
        case "create":
            api_key = _read_api_key(args.api_key)  # first: both keys may come from stdin, in this order
            llm_api_key = _read_llm_api_key() if args.llm_api_key_stdin else ""
            return Command(
                lambda m: m.channels.create_channel(
                    title=args.title,
                    domain=args.domain,
                    api_key=api_key,
                    email=args.email,
                    agent=args.agent,
                    activate=args.activate,
                    bot_label_id=args.bot_label_id,
                    transfer_status=args.transfer_status,
                    transfer_group_id=args.transfer_group_id,
                    llm_base_url=args.llm_base_url or "",
                    llm_model=args.llm_model or "",
                    llm_api_key=llm_api_key,
                )
            )
        case "update":
            changes = _changes(args)
            return Command(lambda m: m.channels.update_channel(args.id, changes))
        case "list":
            return Command(
                lambda m: m.channels.list_channels(limit=args.limit, offset=args.offset), "channels"
            )
        case "activate":
            return Command(lambda m: m.channels.activate_channel(args.id))
        case "deactivate":
            return Command(lambda m: m.channels.deactivate_channel(args.id))
        case "show":
            return Command(lambda m: m.channels.show_channel(args.id))
        case "rotate-secret":
            return Command(lambda m: m.channels.rotate_webhook_secret(args.id))
        case "delete":
            return Command(lambda m: m.channels.delete_channel(args.id))
    raise UsageError(f"unknown command: channel {action}")


def _chat(action: str, args: argparse.Namespace) -> Command:
    match action:
        case "show":
            return Command(lambda m: m.chats.show_chat(args.channel, args.chat, transcript=args.transcript))
        case "list":
            return Command(
                lambda m: m.chats.list_chats(
                    args.channel,
                    owner=args.owner,
                    updated_since=args.since,
                    limit=args.limit,
                    offset=args.offset,
                ),
                "chats",
            )
        case "transfer":
            return Command(lambda m: m.chats.transfer_chat(args.channel, args.chat))
        case "resume":
            return Command(lambda m: m.chats.resume_chat(args.channel, args.chat))
    raise UsageError(f"unknown command: chat {action}")


def _changes(args: argparse.Namespace) -> ChannelChanges:
    """Only what was given changes; --no-bot-label, --no-transfer-group and --no-llm-api-key clear
    a field, as an empty --llm-base-url or --llm-model does."""
    given: dict[str, Any] = {
        name: value
        for name in (
            "title",
            "domain",
            "email",
            "agent",
            "bot_label_id",
            "transfer_status",
            "transfer_group_id",
            "llm_base_url",
            "llm_model",
        )
        if (value := vars(args)[name]) is not None
    }
    if args.api_key is not None:
        given["api_key"] = _read_api_key(args.api_key)
    if args.llm_api_key_stdin:
        given["llm_api_key"] = _read_llm_api_key()
    if args.no_llm_api_key:
        given["llm_api_key"] = ""
    if args.no_bot_label:
        given["bot_label_id"] = None
    if args.no_transfer_group:
        given["transfer_group_id"] = None
    return ChannelChanges(**given)


def _file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _read_api_key(value: str) -> str:
    # "-" reads the key from standard input, keeping it out of shell history and process lists.
    return sys.stdin.readline().strip() if value == "-" else value


def _read_llm_api_key() -> str:
    # Only ever from standard input: a key in argv is in the shell history and the process list.
    key = sys.stdin.readline().strip()
    if not key:
        raise UsageError("--llm-api-key-stdin: standard input gave no key (--no-llm-api-key clears it)")
    return key


async def with_management(settings: Settings, call: Operation, audit: Audit | None = None) -> Answer:
    """Open what the operations need (MongoDB; RabbitMQ on first use), run the call, put what it
    changed in the audit log (a refused call raises: it changed nothing), close."""
    from omnibot.admin.audit import MongoAuditLog
    from omnibot.admin.broker import BrokerLink
    from omnibot.shared.channels import verify_secret_key
    from omnibot.shared.crypto import SecretBox, dev_secret_key
    from omnibot.shared.mongo import ensure_indexes, open_client

    box = SecretBox(settings.secret_key or dev_secret_key(settings.data_dir))
    client = open_client(settings)
    broker = BrokerLink(settings, name="omnibot-cli")
    try:
        db = client[settings.mongodb_db]
        await ensure_indexes(db)
        await verify_secret_key(db, box)
        answer = await call(Management(db, box, settings, broker=broker))
        entry = audit(answer) if audit is not None else None
        if entry is not None:
            await MongoAuditLog(db).record(cli_actor(), *entry)
        return answer
    finally:
        await broker.close()
        await client.close()


def manage(args: argparse.Namespace, settings: Settings) -> int:
    """Run one management command; print its answer (or why it was refused); the exit code."""
    from pymongo.errors import PyMongoError

    from omnibot.shared.crypto import SecretKeyError

    try:
        command = operation(args)
        result = asyncio.run(
            with_management(
                settings,
                command.call,
                lambda answer: audit_entry(
                    args, answer if isinstance(answer, bytes) else msgspec.to_builtins(answer)
                ),
            )
        )
    except UsageError as exc:
        print(f"omnibot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Refused as exc:
        print(f"omnibot: refused ({exc.code}):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_REFUSED
    except SecretKeyError as exc:
        print(f"omnibot: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PyMongoError as exc:
        print(f"omnibot: MongoDB is unavailable ({type(exc).__name__}): check MONGODB_URL", file=sys.stderr)
        return EXIT_REFUSED
    except OmnibotError as exc:
        print(f"omnibot: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if isinstance(result, bytes):
        sys.stdout.write(result.decode() + "\n")
        return EXIT_OK
    data = msgspec.to_builtins(result)
    if command.kind == "status" and not args.json:
        from omnibot.launcher.status import render_status

        print(render_status(data))
        return EXIT_OK
    print(json_text(data) if args.json else render(data, command.kind))
    return exit_code(result)


def exit_code(result: msgspec.Struct) -> int:
    if isinstance(result, ChannelView) and result.checks is not UNSET and not result.active:
        return EXIT_REFUSED  # saved, but activation failed: the checks above say why
    if isinstance(result, ReplayResult) and result.missing:
        return EXIT_REFUSED  # some dead letters asked for were not there
    return EXIT_OK
