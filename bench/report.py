"""The report: the rows as a table with the machine, the date and the load, for the README."""

from __future__ import annotations

from bench.common import machine
from bench.deploy import Bench
from bench.sections import Row
from bench.sizes import CONCURRENCY


def report(rows: list[Row], bench: Bench, *, date: str, load: tuple[str, str], minutes: float) -> None:
    sizes = bench.sizes
    print(f"\n### Pipeline benchmark, {date}\n")
    print(
        f"Machine: {machine()}; RabbitMQ 3.10 on 127.0.0.1."
        f" Load average (1, 5, 15 min) before: {load[0]}; after: {load[1]}."
    )
    print(
        "The cores are shared, unpinned, by the load generator (one process), ingress, the dialog and"
        " egress replicas, the Omnidesk sandbox, the bare pipeline's three processes (idle outside"
        " their runs), RabbitMQ and SecantusDB."
    )
    print(
        f"Median of {bench.runs} run(s), each reference measured in the same run, interleaved."
        f" {CONCURRENCY} webhooks in flight; {sizes.ingress_requests:,} requests per ingress run;"
        f" end-to-end bursts of {sizes.burst:,} messages (in-memory) and {sizes.mongo_burst:,}"
        " (SecantusDB, the local MongoDB-protocol server, far slower than MongoDB); echo agent,"
        f" INBOUND_MODE=webhook, CHAT_PARTITIONS=8, prefetch 32. Took {minutes:.1f} min.\n"
    )
    print("| what | value | reference | ratio | target | result |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row.what} | {row.value} | {row.reference} | {row.ratio} | {row.target} | {row.result} |")
    for title, columns in bench.cpu.items():
        names = list(dict.fromkeys(row for column in columns.values() for row in column))
        print(f"\n| {title} | " + " | ".join(columns) + " |")
        print("|---|" + "---|" * len(columns))
        for name in [*names, "total"]:
            cells = []
            for column in columns.values():
                value = sum(column.values()) if name == "total" else column.get(name)
                cells.append("—" if value is None else f"{value:,.0f}")
            print(f"| {name} | " + " | ".join(cells) + " |")
    for note in bench.notes:
        print(f"\nNote: {note}")
