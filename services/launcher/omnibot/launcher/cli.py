"""The `omnibot` command: run services, manage agents, channels and chats, operate the pipeline.

Exit codes: 0 done, 1 refused (the reasons are printed), 2 usage or configuration error.
Management commands run the same operations as the admin API (`Management`), against MongoDB
directly with the services' environment; they need no running service (except the webhook check
of channel activation, which asks ingress, and dead letters, which need RabbitMQ). `--json` prints
exactly what the admin API answers; without it, people get tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from omnibot.shared.errors import OmnibotError
from omnibot.shared.logs import configure_logging
from omnibot.shared.settings import Settings, SettingsError, load_settings

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
SERVICES = ("ingress", "dialog", "egress", "admin")

Call = Callable[[Any], Awaitable[Any]]

# Columns of the readable tables, per kind of list.
_COLUMNS = {
    "channels": ("id", "title", "domain", "email", "agent", "active"),
    "agents": ("name", "latest_version", "published_version"),
    "versions": ("version", "published", "imported_at", "slots"),
    "chats": ("chat_id", "owner", "agent", "agent_version", "slot", "updated_at", "last_error"),
    "dead": ("id", "stage", "channel_id", "chat_id", "kind", "attempts", "dead_at", "error"),
}


# --- output ----------------------------------------------------------------------------------


def _cell(value: Any, width: int = 60) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return lines


def _fields(data: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    keys = [k for k in data if k not in skip]
    width = max((len(k) for k in keys), default=0)
    lines = []
    for key in keys:
        value = data[key]
        if isinstance(value, dict | list) and value:
            value = json.dumps(value, ensure_ascii=False)
        lines.append(f"{key.ljust(width)}  {_cell(value, width=10_000)}")
    return lines


def render(data: Any, kind: str | None) -> str:
    """The readable form of an operation's answer."""
    if isinstance(data, dict) and "items" in data and "total" in data:
        items = data["items"]
        if not items:
            return "(none)"
        columns = _COLUMNS.get(kind or "", tuple(items[0].keys()))
        lines = _table(items, columns)
        first = data["offset"] + 1
        last = data["offset"] + len(items)
        if data["next_offset"] is not None or data["offset"]:
            more = f"; next: --offset {data['next_offset']}" if data["next_offset"] is not None else ""
            lines.append(f"({first}-{last} of {data['total']}{more})")
        return "\n".join(lines)
    if not isinstance(data, dict):
        return json.dumps(data, ensure_ascii=False, indent=2)
    lines = _fields(data, skip=("checks", "variables", "transcript", "replayed", "missing"))
    for check in data.get("checks") or []:
        lines.append(f"  {'passed' if check['passed'] else 'FAILED'}  {check['name']}: {check['detail']}")
    if "variables" in data:
        lines.append("variables:")
        width = max((len(k) for k in data["variables"]), default=0)
        for name, value in sorted(data["variables"].items()):
            lines.append(f"  {name.ljust(width)}  {json.dumps(value, ensure_ascii=False)}")
    if "transcript" in data:
        lines.append("transcript:")
        for line in data["transcript"]:
            text = line["text"].replace("\n", "\n" + " " * 14)
            lines.append(f"  {_cell(line['at'])[11:19] or '-':8}  {line['role']:8}  {text}")
    if "replayed" in data:
        lines.append(f"replayed  {len(data['replayed'])}")
        lines += [f"  {d['stage']}  {d['id']}  {d['kind']}" for d in data["replayed"]]
        if data["missing"]:
            lines.append("not found (no longer dead letters?): " + ", ".join(data["missing"]))
    return "\n".join(lines)


# --- arguments -------------------------------------------------------------------------------


def _since(value: str) -> float:
    from omnibot.admin.validation import parse_since

    parsed, problem = parse_since(value)
    if problem or parsed is None:
        raise argparse.ArgumentTypeError("an ISO 8601 time (2026-05-01T10:00:00Z) or unix seconds")
    return parsed


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _read_api_key(value: str) -> str:
    # "-" reads the key from standard input, keeping it out of shell history and process lists.
    return sys.stdin.readline().strip() if value == "-" else value


def build_parser() -> argparse.ArgumentParser:
    # `--json` is accepted before the command and after it (`omnibot channel list --json`).
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON (scripts)")

    parser = argparse.ArgumentParser(prog="omnibot", description="Chatbot agents as Omnidesk operators.")
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    sub = parser.add_subparsers(dest="command", required=True)

    def leaf(group: Any, name: str, text: str) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = group.add_parser(
            name, help=text, description=text, parents=[output]
        )
        return command

    def pages(command: argparse.ArgumentParser) -> None:
        command.add_argument("--limit", type=_positive, default=100, help="at most this many (default 100)")
        command.add_argument("--offset", type=int, default=0, help="skip this many")

    run = sub.add_parser("run", help="run a service (all: every one in one process)")
    run.add_argument("service", choices=[*SERVICES, "all"])

    sandbox = sub.add_parser("sandbox", help="run the Omnidesk sandbox (a stand-in Omnidesk account)")
    sandbox.add_argument("--host", default=None)
    sandbox.add_argument("--port", type=int, default=None)

    health = sub.add_parser("health", help="exit 0 if a local worker's heartbeat is fresh (exec probe)")
    health.add_argument("service", choices=["dialog", "egress"])

    sub.add_parser("secret-key", help="print a new SECRET_KEY")

    secrets = sub.add_parser("secrets", help="secrets at rest").add_subparsers(dest="action", required=True)
    leaf(secrets, "rotate", "re-encrypt every channel's secrets under the first key of SECRET_KEY")

    agent = sub.add_parser("agent", help="import, publish, export, list, delete agents").add_subparsers(
        dest="action", required=True
    )
    imp = leaf(agent, "import", "import an agent file (a new version)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--publish", action="store_true", help="publish the imported version")
    validate = leaf(agent, "validate", "check an agent file without importing it")
    validate.add_argument("file", type=Path)
    pub = leaf(agent, "publish", "publish a version (default: the latest); new chats use it")
    pub.add_argument("name")
    pub.add_argument("--version", type=_positive)
    exp = leaf(agent, "export", "print an agent version as an importable file")
    exp.add_argument("name")
    exp.add_argument("--version", type=_positive)
    pages(leaf(agent, "list", "list agents"))
    versions = leaf(agent, "versions", "list an agent's versions")
    versions.add_argument("name")
    pages(versions)
    delete = leaf(agent, "delete", "delete an agent and its versions (refused while a channel uses it)")
    delete.add_argument("name")

    channel = sub.add_parser("channel", help="create, activate, change, list channels").add_subparsers(
        dest="action", required=True
    )
    create = leaf(channel, "create", "create a channel (--activate: CREATE & ACTIVATE)")
    create.add_argument("--title", default="New channel")
    create.add_argument("--domain", required=True, help="Omnidesk address, e.g. https://test-ru.omnidesk.ru")
    create.add_argument("--api-key", required=True, help="Omnidesk API key ('-' reads it from stdin)")
    create.add_argument("--email", required=True, help="e-mail of the bot's staff member in Omnidesk")
    create.add_argument("--agent", required=True, help="default agent name")
    create.add_argument("--bot-label-id", type=int, help="id of the 'on the bot' label (operator transfer)")
    create.add_argument("--transfer-status", default="", choices=["", "open", "waiting", "closed"])
    create.add_argument("--transfer-group-id", type=int)
    create.add_argument("--activate", action="store_true")
    update = leaf(channel, "update", "change a channel (an active one re-runs the checks first)")
    update.add_argument("id", type=int)
    update.add_argument("--title")
    update.add_argument("--domain")
    update.add_argument("--api-key", help="'-' reads it from stdin")
    update.add_argument("--email")
    update.add_argument("--agent", help="default agent: new chats use it, running chats keep theirs")
    label = update.add_mutually_exclusive_group()
    label.add_argument("--bot-label-id", type=int)
    label.add_argument("--no-bot-label", action="store_true", help="clear the bot label id")
    update.add_argument("--transfer-status", choices=["", "open", "waiting", "closed"])
    group = update.add_mutually_exclusive_group()
    group.add_argument("--transfer-group-id", type=int)
    group.add_argument("--no-transfer-group", action="store_true", help="clear the transfer group id")
    for name, text in (
        ("activate", "run the activation checks; the channel is active if all pass"),
        ("deactivate", "deactivate a channel (its webhook accepts nothing)"),
        ("show", "show a channel and its webhook URL"),
        ("rotate-secret", "new webhook URL; the old one stops working"),
        ("delete", "delete a channel (its webhook URL stops working; its chats are kept)"),
    ):
        leaf(channel, name, text).add_argument("id", type=int)
    pages(leaf(channel, "list", "list channels"))

    chat = sub.add_parser("chat", help="show, list, hand over chats").add_subparsers(
        dest="action", required=True
    )
    show = leaf(chat, "show", "owner, agent version, slot, variables, transcript, last error")
    show.add_argument("channel", type=int)
    show.add_argument("chat", help="the Omnidesk case id")
    show.add_argument("--transcript", type=int, default=50, help="transcript lines (the last; default 50)")
    chats = leaf(chat, "list", "a channel's chats, most recently updated first")
    chats.add_argument("channel", type=int)
    chats.add_argument("--owner", choices=["bot", "operator"])
    chats.add_argument("--since", type=_since, help="updated at or after (ISO 8601 or unix seconds)")
    pages(chats)
    for name, text in (
        ("transfer", "hand the chat to an operator (note, bot label removed); the bot stops answering"),
        ("resume", "hand the chat back to the bot, as a fresh session"),
    ):
        command = leaf(chat, name, text)
        command.add_argument("channel", type=int)
        command.add_argument("chat", help="the Omnidesk case id")

    dlq = sub.add_parser("dlq", help="dead letters: list and re-drive").add_subparsers(
        dest="action", required=True
    )
    dead = leaf(dlq, "list", "what a stage gave up on, and why")
    dead.add_argument("--stage", choices=["inbound", "outbound"])
    pages(dead)
    replay = leaf(dlq, "replay", "re-drive dead letters to their stage")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="ids", action="extend", nargs="+", metavar="ID")
    which.add_argument("--all", action="store_true")
    replay.add_argument("--stage", choices=["inbound", "outbound"])

    from omnibot.replay.cli import add_commands as add_replay_commands

    add_replay_commands(sub)
    from omnibot.launcher.users import add_commands as add_user_commands

    add_user_commands(sub)
    return parser


def _file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror}") from None


class _UsageError(Exception):
    pass


def _management_call(args: argparse.Namespace) -> tuple[Call, str | None]:
    """The operation the arguments ask for, and the kind of list it answers (for the table)."""
    from omnibot.admin.schemas import ChannelChanges

    command, action = args.command, args.action
    if command == "secrets":
        return (lambda m: m.rotate_secrets()), None
    if command == "agent":
        if action == "import":
            raw = _file(args.file)
            return (lambda m: m.import_agent(raw, publish=args.publish)), None
        if action == "validate":
            raw = _file(args.file)
            return (lambda m: m.validate_agent(raw)), None
        if action == "publish":
            return (lambda m: m.publish_agent(args.name, args.version)), None
        if action == "export":
            return (lambda m: m.export_agent(args.name, args.version)), None
        if action == "versions":
            return (
                lambda m: m.list_agent_versions(args.name, limit=args.limit, offset=args.offset)
            ), "versions"
        if action == "delete":
            return (lambda m: m.delete_agent(args.name)), None
        return (lambda m: m.list_agents(limit=args.limit, offset=args.offset)), "agents"
    if command == "chat":
        if action == "show":
            return (lambda m: m.show_chat(args.channel, args.chat, transcript=args.transcript)), None
        if action == "list":
            return (
                lambda m: m.list_chats(
                    args.channel,
                    owner=args.owner,
                    updated_since=args.since,
                    limit=args.limit,
                    offset=args.offset,
                )
            ), "chats"
        method = {"transfer": "transfer_chat", "resume": "resume_chat"}[action]
        return (lambda m: getattr(m, method)(args.channel, args.chat)), None
    if command == "dlq":
        if action == "list":
            return (
                lambda m: m.list_dead_letters(stage=args.stage, limit=args.limit, offset=args.offset)
            ), "dead"
        ids = None if args.all else args.ids
        return (lambda m: m.replay_dead_letters(ids, stage=args.stage)), None
    # channel
    if action == "create":
        api_key = _read_api_key(args.api_key)
        return (
            lambda m: m.create_channel(
                title=args.title,
                domain=args.domain,
                api_key=api_key,
                email=args.email,
                agent=args.agent,
                activate=args.activate,
                bot_label_id=args.bot_label_id,
                transfer_status=args.transfer_status,
                transfer_group_id=args.transfer_group_id,
            )
        ), None
    if action == "update":
        given: dict[str, Any] = {
            name: getattr(args, name)
            for name in (
                "title",
                "domain",
                "email",
                "agent",
                "bot_label_id",
                "transfer_status",
                "transfer_group_id",
            )
            if getattr(args, name) is not None
        }
        if args.api_key is not None:
            given["api_key"] = _read_api_key(args.api_key)
        if args.no_bot_label:
            given["bot_label_id"] = None
        if args.no_transfer_group:
            given["transfer_group_id"] = None
        changes = ChannelChanges(**given)
        return (lambda m: m.update_channel(args.id, changes)), None
    if action == "list":
        return (lambda m: m.list_channels(limit=args.limit, offset=args.offset)), "channels"
    method = {
        "activate": "activate_channel",
        "deactivate": "deactivate_channel",
        "show": "show_channel",
        "rotate-secret": "rotate_webhook_secret",
        "delete": "delete_channel",
    }[action]
    return (lambda m: getattr(m, method)(args.id)), None


async def _with_management(settings: Settings, action: Call) -> Any:
    from omnibot.admin.broker import BrokerLink
    from omnibot.admin.operations import Management
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
        return await action(Management(db, box, settings, broker=broker))
    finally:
        await broker.close()
        await client.close()


# --- entry point -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"omnibot: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    sys.exit(_dispatch(args, settings))


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from omnibot.launcher.runner import run, run_services
    from omnibot.shared.crypto import SecretKeyError

    if args.command == "secret-key":
        from omnibot.shared.crypto import generate_key

        print(generate_key())
        return EXIT_OK
    if args.command == "health":
        from omnibot.shared.health import is_alive

        return EXIT_OK if is_alive(args.service) else EXIT_REFUSED
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "run":
        names = list(SERVICES) if args.service == "all" else [args.service]
        try:
            run(run_services(names, settings))
        except (SecretKeyError, SettingsError) as exc:
            print(f"omnibot: configuration error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OmnibotError as exc:
            print(f"omnibot: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        return EXIT_OK
    if args.command == "sandbox":
        from omnibot.sandbox.app import run_sandbox

        run(run_sandbox(args.host or settings.sandbox_host, args.port or settings.sandbox_port))
        return EXIT_OK
    if args.command == "replay":
        from omnibot.replay.cli import dispatch as replay

        return replay(args, settings)
    if args.command == "user":
        from omnibot.launcher.users import dispatch as users

        return users(args, settings)
    return _manage(args, settings)


def _manage(args: argparse.Namespace, settings: Settings) -> int:
    from pymongo.errors import PyMongoError

    from omnibot.admin.operations import Refused
    from omnibot.shared.crypto import SecretKeyError

    try:
        call, kind = _management_call(args)
        result = asyncio.run(_with_management(settings, call))
    except _UsageError as exc:
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
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else render(result, kind))
    if isinstance(result, dict):
        if result.get("checks") and not result.get("active"):
            return EXIT_REFUSED  # saved, but activation failed: the checks above say why
        if result.get("missing"):
            return EXIT_REFUSED  # some dead letters asked for were not there
    return EXIT_OK
