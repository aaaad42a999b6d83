"""The command line in the audit log: who it is, and what each changing command is called there.

Every management command changes something unless it is listed in `READ_ONLY`, so a new command
is audited unless someone says it changes nothing. The actions are named as the console names
them (`channel.create_activate`, `chat.return`, `dead_letters.replay`...), so one filter finds a
change whichever way it was made; the actor is `cli:<the OS user>`. Details carry no values a
person typed (an API key may be among them), only which fields changed.
"""

from __future__ import annotations

import argparse
import getpass
from typing import Any

READ_ONLY = frozenset(
    {
        ("agent", "validate"),
        ("agent", "export"),
        ("agent", "versions"),
        ("agent", "list"),
        ("channel", "list"),
        ("channel", "show"),
        ("chat", "show"),
        ("chat", "list"),
        ("dlq", "list"),
        ("status", None),
    }
)
# Where the console has a name of its own for the same change.
_CONSOLE_NAMES: dict[tuple[str, str | None], str] = {
    ("chat", "resume"): "chat.return",
    ("dlq", "replay"): "dead_letters.replay",
}


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in the environment nor in the password database
        return "cli:?"


def audit_entry(args: argparse.Namespace, answer: Any) -> tuple[str, str, str] | None:
    """The audit entry of a command that ran (`answer`: its result as plain data); None: it
    changed nothing."""
    command, action = args.command, getattr(args, "action", None)
    if (command, action) in READ_ONLY or command == "status":
        return None
    name = _CONSOLE_NAMES.get((command, action), f"{command}.{str(action).replace('-', '_')}")
    if (command, action) == ("channel", "create") and args.activate:
        name = "channel.create_activate"
    if (command, action) == ("agent", "import") and args.publish:
        name = "agent.import_publish"
    return name, _target(command, args, answer), _detail(command, action, args)


def _target(command: str, args: argparse.Namespace, answer: Any) -> str:
    if command == "agent":
        if isinstance(answer, dict) and "name" in answer and "version" in answer:
            return f"{answer['name']} v{answer['version']}"
        version = getattr(args, "version", None)
        return f"{args.name} v{version}" if version else str(args.name)
    if command == "channel":
        if isinstance(answer, dict) and "id" in answer:
            return str(answer["id"])
        return str(getattr(args, "id", ""))
    if command == "chat":
        return f"{args.channel}:{args.chat}"
    if command == "dlq":
        return "all" if args.all else ",".join(args.ids)[:300]
    return ""


# Flags that change a field of another name; every other option given names its field.
_FLAG_FIELDS = {
    "no_bot_label": "bot_label_id",
    "no_transfer_group": "transfer_group_id",
    "llm_api_key_stdin": "llm_api_key",
    "no_llm_api_key": "llm_api_key",
}
_NOT_FIELDS = frozenset({"command", "action", "id", "json", "func"})


def _detail(command: str, action: str | None, args: argparse.Namespace) -> str:
    """Which fields a `channel update` changed (names only: values may be secrets)."""
    if (command, action) != ("channel", "update"):
        return ""
    changed = {
        _FLAG_FIELDS.get(name, name)
        for name, value in vars(args).items()
        if name not in _NOT_FIELDS and value is not None and value is not False
    }
    return "changed: " + ", ".join(sorted(changed))
