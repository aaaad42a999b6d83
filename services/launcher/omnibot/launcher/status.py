"""`omnibot status`: the pipeline at a glance, for the person on call (`--json` for scripts).

The answer is the admin API's `GET /api/v1/status` (`omnibot.admin.ops.status`); this module only
registers the command and lays the answer out as text.
"""

from __future__ import annotations

from typing import Any

from omnibot.shared.printable import printable


def add_commands(sub: Any) -> None:
    command = sub.add_parser(
        "status",
        help="replicas, partition owners, queue depths, dead letters, channels, Omnidesk errors",
    )
    command.add_argument("--json", action="store_true", help="print the admin API's JSON answer")
    command.set_defaults(action="show")


def render_status(data: dict[str, Any]) -> str:
    lines = ["replicas alive"]
    for role in data["roles"]:
        hosts = ", ".join(f"{r['host']}:{r['pid']}" for r in role["replicas"])
        lines.append(f"  {role['role']:<8} {role['alive']}" + (f"  ({hosts})" if hosts else ""))
    for stage in data["stages"]:
        lines.append(
            f"{stage['stage']}: queued {_count(stage['queued'])}, retrying {_count(stage['retrying'])}, "
            f"dead letters {_count(stage['dead_letters'])}, partitions without consumer "
            f"{stage['without_consumer']}"
        )
        for partition in stage["partitions"]:
            owner = partition["owner"] or "NO CONSUMER"
            lines.append(f"  p{partition['partition']:<3} {_count(partition['queued']):>6}  {owner}")
    channels = data["channels"]
    lines.append(f"channels: {channels['active']} active of {channels['total']}")
    accounts = data["omnidesk_accounts"]
    lines.append("omnidesk accounts: " + ("no errors recorded" if not accounts else "last error"))
    for account in accounts:
        lines.append(f"  {account['account']}  {account['at'] or '-'}  {account['last_error']}")
    if data["broker"] != "ok":
        lines.append(f"rabbitmq: {data['broker']}")
    return printable("\n".join(lines), keep_newlines=True)


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)
