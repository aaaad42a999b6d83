"""The `omnibot` command: run services, manage agents and channels, operate the pipeline.

Exit codes: 0 done, 1 refused (the reason is printed), 2 usage error.
Management commands talk to MongoDB directly with the services' environment; they need no running
service (except the webhook check of channel activation, which asks ingress).
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


def _print(data: Any, as_json: bool) -> None:
    if as_json or not isinstance(data, list):
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    if not data:
        print("(none)")
        return
    columns = list(data[0].keys())
    rows = [[_cell(row.get(c)) for c in columns] for row in data]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


async def _with_management(settings: Settings, action: Callable[[Any], Awaitable[Any]]) -> Any:
    from omnibot.admin.operations import Management
    from omnibot.shared.crypto import SecretBox, dev_secret_key
    from omnibot.shared.mongo import ensure_indexes, open_client

    client = open_client(settings)
    try:
        db = client[settings.mongodb_db]
        await ensure_indexes(db)
        box = SecretBox(settings.secret_key or dev_secret_key(settings.data_dir))
        return await action(Management(db, box, settings))
    finally:
        await client.close()


def _read_api_key(value: str) -> str:
    # "-" reads the key from standard input, keeping it out of shell history and process lists.
    return sys.stdin.readline().strip() if value == "-" else value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnibot", description="Chatbot agents as Omnidesk operators.")
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a service (all: the three in one process)")
    run.add_argument("service", choices=["ingress", "dialog", "egress", "all"])

    sandbox = sub.add_parser("sandbox", help="run the Omnidesk sandbox (a stand-in Omnidesk account)")
    sandbox.add_argument("--host", default=None)
    sandbox.add_argument("--port", type=int, default=None)

    health = sub.add_parser("health", help="exit 0 if a local worker's heartbeat is fresh (exec probe)")
    health.add_argument("service", choices=["dialog", "egress"])

    sub.add_parser("secret-key", help="print a new SECRET_KEY")

    agent = sub.add_parser("agent", help="import, publish, export, list agents").add_subparsers(
        dest="action", required=True
    )
    imp = agent.add_parser("import", help="import an agent file (a new version)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--publish", action="store_true", help="publish the imported version")
    pub = agent.add_parser("publish", help="publish a version (default: the latest)")
    pub.add_argument("name")
    pub.add_argument("--version", type=int)
    exp = agent.add_parser("export", help="print an agent version as an importable file")
    exp.add_argument("name")
    exp.add_argument("--version", type=int)
    agent.add_parser("list", help="list agents")

    channel = sub.add_parser("channel", help="create, activate, list channels").add_subparsers(
        dest="action", required=True
    )
    create = channel.add_parser("create", help="create a channel (--activate: CREATE & ACTIVATE)")
    create.add_argument("--title", default="New channel")
    create.add_argument("--domain", required=True, help="Omnidesk address, e.g. https://test-ru.omnidesk.ru")
    create.add_argument("--api-key", required=True, help="Omnidesk API key ('-' reads it from stdin)")
    create.add_argument("--email", required=True, help="e-mail of the bot's staff member in Omnidesk")
    create.add_argument("--agent", required=True, help="default agent name")
    create.add_argument("--bot-label-id", type=int, help="id of the 'on the bot' label (operator transfer)")
    create.add_argument("--transfer-status", default="", choices=["", "open", "waiting", "closed"])
    create.add_argument("--transfer-group-id", type=int)
    create.add_argument("--activate", action="store_true")
    for name in ("activate", "deactivate", "show"):
        cmd = channel.add_parser(name, help=f"{name} a channel")
        cmd.add_argument("id", type=int)
    channel.add_parser("list", help="list channels")
    return parser


def _management_call(args: argparse.Namespace) -> Callable[[Any], Awaitable[Any]]:
    if args.command == "agent":
        if args.action == "import":
            raw = args.file.read_bytes()
            return lambda m: m.import_agent(raw, publish=args.publish)
        if args.action == "publish":
            return lambda m: m.publish_agent(args.name, args.version)
        if args.action == "export":
            return lambda m: m.export_agent(args.name, args.version)
        return lambda m: m.list_agents()
    if args.action == "create":
        api_key = _read_api_key(args.api_key)
        return lambda m: m.create_channel(
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
    if args.action == "list":
        return lambda m: m.list_channels()
    method = {"activate": "activate_channel", "deactivate": "deactivate_channel", "show": "show_channel"}[
        args.action
    ]
    return lambda m: getattr(m, method)(args.id)


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
    from omnibot.admin.operations import Refused
    from omnibot.admin.runner import run, run_services

    if args.command == "secret-key":
        from omnibot.shared.crypto import generate_key

        print(generate_key())
        return EXIT_OK
    if args.command == "health":
        from omnibot.shared.health import is_alive

        return EXIT_OK if is_alive(args.service) else EXIT_REFUSED
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "run":
        names = ["ingress", "dialog", "egress"] if args.service == "all" else [args.service]
        try:
            run(run_services(names, settings))
        except OmnibotError as exc:
            print(f"omnibot: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        return EXIT_OK
    if args.command == "sandbox":
        from omnibot.sandbox.app import run_sandbox

        run(run_sandbox(args.host or settings.sandbox_host, args.port or settings.sandbox_port))
        return EXIT_OK
    try:
        result = asyncio.run(_with_management(settings, _management_call(args)))
    except Refused as exc:
        print(f"omnibot: refused ({exc.code}):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_REFUSED
    except OmnibotError as exc:
        print(f"omnibot: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if isinstance(result, bytes):
        sys.stdout.write(result.decode() + "\n")
        return EXIT_OK
    _print(result, args.json)
    if isinstance(result, dict) and result.get("checks") and not result.get("active"):
        return EXIT_REFUSED  # saved, but activation failed: the checks above say why
    return EXIT_OK
