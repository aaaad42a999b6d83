"""The pipeline at a glance (`omnibot status`, `GET /api/v1/status`): replicas alive per role,
partition owners, queue depths and dead letters, channels active, each Omnidesk account's last
error.

Read from where each fact lives: the replicas' heartbeats and the partition leases in MongoDB,
queue depths from RabbitMQ (passive declares; no management plugin), the last Omnidesk errors as
the services recorded them. RabbitMQ being down does not fail the answer: `broker` says so.
"""

from __future__ import annotations

import time

import msgspec
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.admin.ops.context import Context
from omnibot.admin.ops.views import iso_time
from omnibot.shared.account_errors import last_errors
from omnibot.shared.depths import StageDepths, read_depths
from omnibot.shared.metrics import stage_label
from omnibot.shared.mongo import Document
from omnibot.shared.replicas import alive
from omnibot.shared.topology import Stage, Topology

ROLES = ("ingress", "dialog", "egress", "admin")


class ReplicaView(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    host: str
    pid: int
    version: str
    started_at: str | None
    seen_s_ago: float


class RoleView(msgspec.Struct, kw_only=True, frozen=True):
    role: str
    alive: int
    replicas: list[ReplicaView]


class PartitionView(msgspec.Struct, kw_only=True, frozen=True):
    partition: int
    owner: str | None  # the replica holding the lease; None: no consumer
    queued: int | None  # ready messages; None when RabbitMQ could not be read


class StageView(msgspec.Struct, kw_only=True, frozen=True):
    stage: str
    partitions: list[PartitionView]
    without_consumer: int
    queued: int | None
    retrying: int | None
    dead_letters: int | None


class ChannelsView(msgspec.Struct, kw_only=True, frozen=True):
    active: int
    total: int


class AccountView(msgspec.Struct, kw_only=True, frozen=True):
    account: str  # the Omnidesk domain's host
    last_error: str
    at: str | None


class StatusView(msgspec.Struct, kw_only=True, frozen=True):
    roles: list[RoleView]
    stages: list[StageView]
    channels: ChannelsView
    omnidesk_accounts: list[AccountView]
    broker: str  # "ok", or why queue depths are missing


class StatusOperations:
    def __init__(self, context: Context, db: AsyncDatabase[Document]) -> None:
        self._ctx = context
        self._db = db

    async def status(self) -> StatusView:
        now = time.time()
        settings = self._ctx.settings
        stages = Topology.build(settings.amqp_namespace, settings.chat_partitions).stages
        depths: dict[str, StageDepths] = {}
        broker = "ok"
        try:
            _, connection = await self._ctx.connect()
            for stage in stages:
                depths[stage.name] = await read_depths(connection, stage)
        except Exception as exc:  # noqa: BLE001 - the rest of the status is worth showing anyway
            broker = f"queue depths unavailable: {getattr(exc, 'problems', None) or type(exc).__name__}"
        return StatusView(
            roles=await self._roles(now),
            stages=[await self._stage(stage, depths.get(stage.name), now) for stage in stages],
            channels=ChannelsView(
                active=await self._db.channels.count_documents({"active": True}),
                total=await self._db.channels.count_documents({}),
            ),
            omnidesk_accounts=[
                AccountView(
                    account=str(doc["_id"]),
                    last_error=str(doc.get("last_error", "")),
                    at=iso_time(float(doc.get("at") or 0)),
                )
                for doc in await last_errors(self._db)
            ],
            broker=broker,
        )

    async def _roles(self, now: float) -> list[RoleView]:
        found = await alive(self._db, now=now)
        roles = [*ROLES, *sorted(set(found) - set(ROLES))]
        return [
            RoleView(
                role=role,
                alive=len(found.get(role, [])),
                replicas=[
                    ReplicaView(
                        id=str(doc["_id"]),
                        host=str(doc.get("host", "")),
                        pid=int(doc.get("pid", 0)),
                        version=str(doc.get("version", "")),
                        started_at=iso_time(float(doc.get("started_at") or 0)),
                        seen_s_ago=round(max(0.0, now - float(doc.get("seen_at", 0))), 1),
                    )
                    for doc in found.get(role, [])
                ],
            )
            for role in roles
        ]

    async def _stage(self, stage: Stage, depths: StageDepths | None, now: float) -> StageView:
        owners: dict[int, str] = {}
        async for lease in self._db.partition_leases.find({"_id": {"$regex": f"^{_escape(stage.name)}:"}}):
            partition = str(lease["_id"]).rsplit(":", 1)[1]
            if lease.get("owner") and float(lease.get("expires_at") or 0) > now and partition.isdigit():
                owners[int(partition)] = str(lease["owner"])
        partitions = [
            PartitionView(
                partition=p,
                owner=owners.get(p),
                queued=None if depths is None else depths.partitions.get(p),
            )
            for p in range(stage.partitions)
        ]
        return StageView(
            stage=stage_label(stage.name),
            partitions=partitions,
            without_consumer=sum(1 for p in partitions if p.owner is None),
            queued=None if depths is None else depths.queued,
            retrying=None if depths is None else depths.retrying,
            dead_letters=None if depths is None else depths.dead,
        )


def _escape(text: str) -> str:
    return "".join(f"\\{ch}" if not ch.isalnum() else ch for ch in text)
