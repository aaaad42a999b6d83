"""`omnibot user ...`: the console's accounts from the command line.

`create --email E --role admin|viewer --password-stdin`, `list`, `set-role`, `disable`, `enable`,
`reset-password --password-stdin`. The password is read from standard input (one line; asked for
without echo on a terminal), never from an argument, so it stays out of shell history and `ps`.
Each change goes into the audit log with the actor `cli:<the OS user>`. Runs against MongoDB
directly, with the services' environment; no service needs to run.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import Any

import msgspec

from omnibot.shared.settings import Settings

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def add_commands(sub: Any) -> None:
    user = sub.add_parser("user", help="console accounts: create, list, set-role, disable, reset-password")
    actions = user.add_subparsers(dest="action", required=True)

    def leaf(name: str, text: str, *, email: bool = True) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = actions.add_parser(name, help=text, description=text)
        if email:
            command.add_argument("--email", required=True)
        command.add_argument("--json", action="store_true", help="print JSON")
        return command

    create = leaf("create", "create an account")
    create.add_argument("--role", required=True, choices=["admin", "viewer"])
    create.add_argument(
        "--password-stdin", action="store_true", required=True, help="read the password from stdin"
    )
    leaf("list", "list the accounts", email=False)
    role = leaf("set-role", "change an account's role (its sessions end)")
    role.add_argument("--role", required=True, choices=["admin", "viewer"])
    leaf("disable", "disable an account: it cannot sign in, its sessions end")
    leaf("enable", "enable a disabled account again")
    reset = leaf("reset-password", "set a new password (its sessions end)")
    reset.add_argument(
        "--password-stdin", action="store_true", required=True, help="read the password from stdin"
    )


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def _run(args: argparse.Namespace, settings: Settings, password: str) -> Any:
    from omnibot.admin.audit import MongoAuditLog
    from omnibot.admin.users import MongoUserStore
    from omnibot.launcher.audit import cli_actor
    from omnibot.shared.mongo import open_client

    client = open_client(settings)
    try:
        db = client[settings.mongodb_db]
        users, audit = MongoUserStore(db), MongoAuditLog(db)
        await users.ensure_indexes()
        action = args.action
        if action == "list":
            return [msgspec.to_builtins(u) for u in await users.list()]
        if action == "create":
            done = await users.create(args.email, args.role, password)
            detail = f"role {args.role}"
        elif action == "set-role":
            done = await users.set_role(args.email, args.role)
            detail = f"role {args.role}"
        elif action in ("disable", "enable"):
            done = await users.disable(args.email, action == "disable")
            detail = ""
        else:
            done = await users.reset_password(args.email, password)
            detail = ""
        await audit.record(cli_actor(), f"user.{action.replace('-', '_')}", done.email, detail)
        return msgspec.to_builtins(done)
    finally:
        await client.close()


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from pymongo.errors import PyMongoError

    from omnibot.admin.users import UserRefused

    password = ""
    if getattr(args, "password_stdin", False):
        try:
            password = _read_password()
        except ValueError as exc:
            print(f"omnibot: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        result = asyncio.run(_run(args, settings, password))
    except UserRefused as exc:
        print("omnibot: refused:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_REFUSED
    except PyMongoError as exc:
        print(f"omnibot: MongoDB is unavailable ({type(exc).__name__}): check MONGODB_URL", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    elif isinstance(result, list):
        if not result:
            print("(no users: create one with omnibot user create --email E --role admin --password-stdin)")
        for user in result:
            state = "disabled" if user["disabled"] else "enabled"
            print(f"{user['email']}  {user['role']}  {state}")
    else:
        state = "disabled" if result["disabled"] else "enabled"
        print(f"{result['email']}  {result['role']}  {state}")
    return EXIT_OK
