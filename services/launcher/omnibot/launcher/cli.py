"""The `omnibot` command: run services, manage agents, channels and chats, operate the pipeline.

Exit codes: 0 done, 1 refused (the reasons are printed), 2 usage or configuration error.
Management commands run the same operations as the admin API (`Management`), against MongoDB
directly with the services' environment; they need no running service (except the webhook check
of channel activation, which asks ingress, and dead letters, which need RabbitMQ). `--json` prints
exactly what the admin API answers; without it, people get tables.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omnibot.launcher.agent_tools import ACTIONS as AGENT_TOOLS
from omnibot.launcher.agent_tools import add_commands as add_agent_tools
from omnibot.launcher.agent_tools import dispatch as agent_tools
from omnibot.launcher.exits import EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from omnibot.launcher.render import render
from omnibot.shared.errors import OmnibotError
from omnibot.shared.logs import configure_logging
from omnibot.shared.settings import Settings, SettingsError, load_settings

__all__ = ["EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "build_parser", "main", "render", "unrecognized"]

SERVICES = ("ingress", "dialog", "egress", "admin")


# --- arguments -------------------------------------------------------------------------------


def _since(value: str) -> float:
    from omnibot.admin.validation import parse_since

    parsed, problem = parse_since(value)
    if problem or parsed is None:
        raise argparse.ArgumentTypeError("an ISO 8601 time (2026-05-01T10:00:00Z) or unix seconds")
    return parsed


def _channel_id(value: str) -> int:
    from omnibot.shared.ids import parse_channel_id

    channel_id = parse_channel_id(value)
    if channel_id is None:
        raise argparse.ArgumentTypeError("a channel id: ASCII digits without leading zeros")
    return channel_id


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def llm_arguments(command: argparse.ArgumentParser, *, clearing: bool = False) -> None:
    """The channel's own language model for `llm` slots; the key only from standard input."""
    empty = " ('' clears it)" if clearing else ""
    command.add_argument(
        "--llm-base-url", help=f"chat-completions API of this channel (default LLM_BASE_URL){empty}"
    )
    command.add_argument("--llm-model", help=f"model of this channel (default LLM_MODEL){empty}")
    key = command.add_mutually_exclusive_group()
    key.add_argument(
        "--llm-api-key-stdin",
        action="store_true",
        help="read the language model's key from stdin (after the Omnidesk key, if --api-key -)",
    )
    if clearing:
        key.add_argument("--no-llm-api-key", action="store_true", help="clear the language model's key")


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
    add_agent_tools(agent, leaf)
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
    llm_arguments(create)
    create.add_argument("--activate", action="store_true")
    update = leaf(channel, "update", "change a channel (an active one re-runs the checks first)")
    update.add_argument("id", type=_channel_id)
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
    llm_arguments(update, clearing=True)
    for name, text in (
        ("activate", "run the activation checks; the channel is active if all pass"),
        ("deactivate", "deactivate a channel (its webhook accepts nothing)"),
        ("show", "show a channel and its webhook URL"),
        ("rotate-secret", "new webhook URL; the old one stops working"),
        ("delete", "delete a channel (its webhook URL stops working; its chats are kept)"),
    ):
        leaf(channel, name, text).add_argument("id", type=_channel_id)
    pages(leaf(channel, "list", "list channels"))

    chat = sub.add_parser("chat", help="show, list, hand over chats").add_subparsers(
        dest="action", required=True
    )
    show = leaf(chat, "show", "owner, agent version, slot, variables, transcript, last error")
    show.add_argument("channel", type=_channel_id)
    show.add_argument("chat", help="the Omnidesk case id")
    show.add_argument("--transcript", type=int, default=50, help="transcript lines (the last; default 50)")
    chats = leaf(chat, "list", "a channel's chats, most recently updated first")
    chats.add_argument("channel", type=_channel_id)
    chats.add_argument("--owner", choices=["bot", "operator"])
    chats.add_argument("--since", type=_since, help="updated at or after (ISO 8601 or unix seconds)")
    pages(chats)
    for name, text in (
        ("transfer", "hand the chat to an operator (note, bot label removed); the bot stops answering"),
        ("resume", "hand the chat back to the bot, as a fresh session"),
    ):
        command = leaf(chat, name, text)
        command.add_argument("channel", type=_channel_id)
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
    from omnibot.launcher.queues import add_commands as add_queue_commands

    add_queue_commands(sub)
    from omnibot.launcher.status import add_commands as add_status_command

    add_status_command(sub)
    return parser


# --- entry point -----------------------------------------------------------------------------


def unrecognized(extras: Sequence[str]) -> str:
    """The usage error for arguments the parser does not know, naming the options only: a value
    typed after an unknown option may be a secret (`--llm-api-key KEY`, where only
    `--llm-api-key-stdin` exists), and the message can end up in a CI log."""
    names = [extra.split("=", 1)[0] for extra in extras if extra.startswith("-")]
    values = len(extras) - len(names)
    shown = " ".join(names)
    if values:
        shown += f"{' and ' if names else ''}{values} value{'s' if values > 1 else ''} (not shown)"
    return f"unrecognized arguments: {shown}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        parser.error(unrecognized(extras))
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"omnibot: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    sys.exit(_dispatch(args, settings))


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from omnibot.launcher.runner import run, run_services, until_signalled
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

        run(
            until_signalled(
                run_sandbox(args.host or settings.sandbox_host, args.port or settings.sandbox_port)
            )
        )
        return EXIT_OK
    if args.command == "agent" and args.action in AGENT_TOOLS:
        return agent_tools(args, settings)
    if args.command == "replay":
        from omnibot.replay.cli import dispatch as replay

        return replay(args, settings)
    if args.command == "user":
        from omnibot.launcher.users import dispatch as users

        return users(args, settings)
    if args.command == "queues":
        from omnibot.launcher.queues import dispatch as queues

        return queues(args, settings)
    from omnibot.launcher.manage import manage

    return manage(args, settings)
