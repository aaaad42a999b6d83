"""Every Prometheus metric omnibot exports, and the small calls the services record through.

The names and labels are a contract: the dashboards in `deploy/grafana`, the alerts in
`deploy/prometheus` and users' own rules depend on them (README, "Operating"). Label values are
always bounded: a channel id only once ingress has verified the channel, an Omnidesk account as
its domain's host, reasons and results from fixed sets; never a chat id, an e-mail or free text.

The metrics live in the client library's process-wide registry because a process holds one
listener for whatever services it runs (`omnibot run all`); recording costs a dictionary lookup
and a lock, so it is on by default even when nobody scrapes. `METRICS_ENABLED=false` turns every
`record_*` call into a return (`configure`, once per process, before its services start): what
the benchmark compares against, and for whoever wants no metrics at all.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from prometheus_client import Counter, Gauge, Histogram

from omnibot.shared.ratelimit import header

VERSION: Final = "0.1.0"

# Seconds. A turn or a delivery is milliseconds when all is well; the tail is Omnidesk or an
# agent's external request, which can take up to their timeouts.
_FAST_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# What a customer waits for: from well under a second to the minutes of an Omnidesk outage.
_LATENCY_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

WEBHOOK_RESULTS: Final = ("accepted", "rejected", "unavailable")
TURN_OUTCOMES: Final = ("done", "duplicate", "redelivered", "error")
DELIVERY_KINDS: Final = ("reply", "file", "note", "transfer")
DELIVERY_RESULTS: Final = ("delivered", "retried", "dead_lettered", "duplicate_skipped", "deferred")
EXTERNAL_RESULTS: Final = ("ok", "error", "refused_by_policy", "timeout")
TRANSFER_REASONS: Final = ("slot", "error", "loop", "label_removed", "manual")
LEASE_CHANGES: Final = ("taken", "released", "lost", "fenced")


class _Switch:
    """Whether the `record_*` calls record (METRICS_ENABLED); process-wide, like the registry."""

    on = True


def configure(*, enabled: bool) -> None:
    _Switch.on = enabled


def enabled() -> bool:
    return _Switch.on


webhooks = Counter(
    "omnibot_webhooks", "Webhooks received by ingress, by channel and result.", ["channel", "result"]
)
webhook_rejections = Counter(
    "omnibot_webhook_rejections", "Webhooks refused with a 4xx, by reason.", ["reason"]
)
turns = Counter("omnibot_turns", "Inbound messages handled by dialog, by outcome.", ["outcome"])
turn_duration = Histogram(
    "omnibot_turn_duration_seconds", "Time dialog spent on one inbound message.", buckets=_FAST_BUCKETS
)
deliveries = Counter(
    "omnibot_deliveries", "Outbound actions handled by egress, by kind and result.", ["kind", "result"]
)
delivery_duration = Histogram(
    "omnibot_delivery_duration_seconds",
    "Time egress spent on one attempt at an outbound action.",
    buckets=_FAST_BUCKETS,
)
reply_latency = Histogram(
    "omnibot_reply_latency_seconds",
    "From the webhook's acceptance by ingress to the reply's creation in Omnidesk, per reply.",
    buckets=_LATENCY_BUCKETS,
)
omnidesk_requests = Counter(
    "omnibot_omnidesk_requests",
    "Omnidesk API calls, by account (domain host), method and status (HTTP code, or error/timeout).",
    ["account", "method", "status"],
)
omnidesk_request_duration = Histogram(
    "omnibot_omnidesk_request_duration_seconds",
    "Duration of Omnidesk API calls, by account.",
    ["account"],
    buckets=_FAST_BUCKETS,
)
omnidesk_calls_left = Gauge(
    "omnibot_omnidesk_calls_left",
    "Omnidesk's api_calls_left in the last answer for the account, this minute.",
    ["account"],
)
rate_limited = Counter(
    "omnibot_rate_limited", "Omnidesk answers refusing a call for the rate limit, by account.", ["account"]
)
transfers = Counter("omnibot_transfers", "Chats handed to an operator, by reason.", ["reason"])
chats_returned_to_bot = Counter(
    "omnibot_chats_returned_to_bot", "Chats handed back from an operator to the bot."
)
external_requests = Counter("omnibot_external_requests", "Agents' external requests, by result.", ["result"])
partitions_owned = Gauge("omnibot_partitions_owned", "Partitions this replica consumes, by stage.", ["stage"])
partitions = Gauge("omnibot_partitions", "Partitions a stage has (CHAT_PARTITIONS).", ["stage"])
partition_lease_changes = Counter(
    "omnibot_partition_lease_changes",
    "Partition leases taken, released, lost (not renewed in time) or fenced, by stage.",
    ["stage", "change"],
)
queue_messages = Gauge(
    "omnibot_queue_messages",
    "Ready messages in a queue (partitions, retry tiers summed per stage, dead letters).",
    ["queue"],
)
dead_letters = Gauge("omnibot_dead_letters", "Messages waiting in a stage's dead-letter queue.", ["stage"])


build_info = Gauge("omnibot_build_info", "Always 1; the labels say what runs.", ["version", "python"])
build_info.labels(version=VERSION, python=platform.python_version()).set(1)


@functools.lru_cache(maxsize=4096)
def account_label(domain: str) -> str:
    """An Omnidesk account as a label value: the host (and port) of its domain, nothing more."""
    try:
        parts = urlsplit(domain if "//" in domain else f"//{domain}")
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return "invalid"
    if not host:
        return "invalid"
    return (f"{host}:{port}" if port else host)[:100]


def stage_label(stage_name: str) -> str:
    """A stage without its AMQP namespace (`t1.chat.inbound` → `chat.inbound`): stable for rules."""
    index = stage_name.find("chat.")
    return stage_name[index:] if index >= 0 else stage_name


def record_webhook(channel: str, result: str, reason: str | None = None) -> None:
    if not _Switch.on:
        return
    webhooks.labels(channel, result).inc()
    if reason is not None:
        webhook_rejections.labels(reason).inc()


def record_turn(outcome: str, seconds: float) -> None:
    if not _Switch.on:
        return
    turns.labels(outcome).inc()
    turn_duration.observe(seconds)


def record_delivery(kind: str, result: str, seconds: float) -> None:
    if not _Switch.on:
        return
    deliveries.labels(kind, result).inc()
    delivery_duration.observe(seconds)


def record_reply_latency(seconds: float) -> None:
    if not _Switch.on:
        return
    if seconds >= 0:
        reply_latency.observe(seconds)


def record_omnidesk_call(
    account: str, method: str, status: str, seconds: float, headers: Mapping[str, str] | None
) -> None:
    if not _Switch.on:
        return
    omnidesk_requests.labels(account, method, status).inc()
    omnidesk_request_duration.labels(account).observe(seconds)
    if headers is not None:
        left = header(headers, "api_calls_left")
        if left is not None and left.strip().lstrip("-").isdigit():
            omnidesk_calls_left.labels(account).set(int(left))


def record_rate_limited(account: str) -> None:
    if not _Switch.on:
        return
    rate_limited.labels(account).inc()


def record_transfer(reason: str) -> None:
    if not _Switch.on:
        return
    transfers.labels(reason if reason in TRANSFER_REASONS else "other").inc()


def record_returned_to_bot() -> None:
    if not _Switch.on:
        return
    chats_returned_to_bot.inc()


def record_external_request(result: str) -> None:
    if not _Switch.on:
        return
    external_requests.labels(result).inc()


def record_partitions(stage: str, owned: int, total: int) -> None:
    if not _Switch.on:
        return
    label = stage_label(stage)
    partitions_owned.labels(label).set(owned)
    partitions.labels(label).set(total)


def record_lease_change(stage: str, change: str, count: int = 1) -> None:
    if not _Switch.on:
        return
    if count > 0:
        partition_lease_changes.labels(stage_label(stage), change).inc(count)


def record_queue_depths(depths: Mapping[str, int], dead: Mapping[str, int]) -> None:
    if not _Switch.on:
        return
    for queue, count in depths.items():
        queue_messages.labels(stage_label(queue)).set(count)
    for stage, count in dead.items():
        dead_letters.labels(stage_label(stage)).set(count)
