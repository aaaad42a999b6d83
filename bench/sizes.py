"""What the pipeline benchmark measures and how much: sizes per mode, targets, the message text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Store = Literal["memory", "mongo"]
CONCURRENCY = 64  # webhooks (and bare publishes) in flight
MAX_RUN = 8_000  # messages per paced run at most: the sandbox's request log keeps the newest 10,000
E2E_TARGET = 0.40
INGRESS_TARGET = 0.80
P99_TARGET_MS = 50.0
CPU_E2E = "CPU per message, end to end (µs)"
FLAT = 0.80  # "flat": the larger case keeps at least this share of the smaller one's throughput
JSON_HEADERS = {"Content-Type": "application/json"}
FILLER = "Здравствуйте! Подскажите, пожалуйста, где мой заказ: оформила его на прошлой неделе, а статус"


@dataclass(frozen=True)
class Sizes:
    ingress_requests: int  # per run and handler
    burst: int  # end-to-end messages per measured burst (in-memory stores)
    mongo_burst: int  # the same on the MongoDB-protocol server
    chats: int  # the headline's chats
    few: int
    many: int
    history: int  # exchanges already in the long chat
    single_burst: int  # messages to one chat
    latency_s: float  # seconds of paced traffic per latency run
    warmup: int


FULL = Sizes(
    ingress_requests=10_000,
    burst=3000,
    mongo_burst=400,
    chats=100,
    few=10,
    many=10_000,
    history=500,
    single_burst=300,
    latency_s=10.0,
    warmup=200,
)
QUICK = Sizes(
    ingress_requests=1000,
    burst=300,
    mongo_burst=60,
    chats=20,
    few=10,
    many=500,
    history=50,
    single_burst=40,
    latency_s=3.0,
    warmup=40,
)
