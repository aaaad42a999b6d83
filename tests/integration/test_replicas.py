"""Several dialog and egress replicas: partitions shared out, chats in order, graceful stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from omnibot.dialog.service import serve_dialog
from omnibot.egress.service import serve_egress
from omnibot.ingress.service import serve_ingress
from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.processes import ServiceProcess
from omnibot.testkit.services import ServiceTask
from tests.harness import add_rules, bot_texts, customer_says, eventually, setup_channel, wait_bot_messages

MENU = "Чем помочь?\n1. Статус заказа\n2. Оператор"


async def leases_by_owner(settings: Settings) -> dict[str, set[str]]:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    try:
        owners: dict[str, set[str]] = {}
        async for lease in client[settings.mongodb_db].partition_leases.find({"owner": {"$ne": None}}):
            owners.setdefault(str(lease["owner"]), set()).add(str(lease["_id"]))
        return owners
    finally:
        await client.close()


async def leases_follow_the_assignment(settings: Settings, replicas_per_stage: int) -> bool:
    """Every partition leased to the replica that rendezvous hashing over the live ones names."""
    from pymongo import AsyncMongoClient

    from omnibot.shared.partitions import rendezvous_owner

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    try:
        db = client[settings.mongodb_db]
        for stage in (f"{settings.amqp_namespace}.chat.inbound", f"{settings.amqp_namespace}.chat.outbound"):
            members = sorted([str(m["_id"]) async for m in db.members.find({"stage": stage})])
            if len(members) != replicas_per_stage:
                return False
            for partition in range(settings.chat_partitions):
                lease = await db.partition_leases.find_one({"_id": f"{stage}:{partition}"})
                if lease is None or lease.get("owner") != rendezvous_owner(stage, partition, members):
                    return False
        return True
    finally:
        await client.close()


async def test_two_replicas_each_share_the_partitions_and_keep_every_chat_in_order(
    settings: Settings, broker: object, db: object, sandbox: tuple[SandboxState, str]
) -> None:
    state, url = sandbox
    services = [ServiceTask("ingress", serve_ingress, settings)]
    for name, serve in (("dialog", serve_dialog), ("egress", serve_egress)) * 2:
        services.append(ServiceTask(name, serve, settings))
    try:
        for service in services:
            await service.wait_ready()

        await eventually(
            lambda: leases_follow_the_assignment(settings, 2),
            what="two replicas per stage sharing the partitions",
        )
        channel = await setup_channel(settings, state, url)
        await add_rules(url, channel["webhook_url"])
        cases = [(await customer_says(url, "Привет", name=f"R{i}"))["case_id"] for i in range(12)]
        for case in cases:
            await customer_says(url, "1", case_id=case)
        for case in cases:
            await customer_says(url, "12", case_id=case)
        for i, case in enumerate(cases):
            await wait_bot_messages(state, case, 4, timeout=20)
            assert bot_texts(state, case) == [
                f"Здравствуйте, R{i}!",
                MENU,
                "Номер заказа?",
                "Заказ 12 принят.",
            ]
    finally:
        for service in reversed(services):
            await service.stop()


async def test_sigterm_finishes_in_flight_work_exits_0_and_the_other_replica_takes_over(
    settings: Settings, broker: object, db: object, sandbox: tuple[SandboxState, str], tmp_path: Path
) -> None:
    state, url = sandbox
    services = [
        ServiceTask(n, s, settings) for n, s in (("ingress", serve_ingress), ("egress", serve_egress))
    ]
    for service in services:
        await service.wait_ready()
    leaving = ServiceProcess("dialog", settings, tmp_path)
    staying: ServiceProcess | None = None
    try:
        await leaving.wait_log("dialog consuming")
        channel = await setup_channel(settings, state, url)
        await add_rules(url, channel["webhook_url"])
        staying = ServiceProcess("dialog", settings, tmp_path)
        await staying.wait_log("dialog consuming")
        sends = [asyncio.create_task(customer_says(url, "Привет", name=f"S{i}")) for i in range(10)]
        await asyncio.sleep(0.05)  # let the stream start before the stop signal (deliberate)
        code = leaving.terminate(timeout=30)
        assert code == 0, leaving.log_path.read_text()[-4000:]
        assert "dialog stopped" in leaving.log_path.read_text()
        cases = [(await send)["case_id"] for send in sends]
        for i, case in enumerate(cases):
            assert await wait_bot_messages(state, case, 2, timeout=20) == [f"Здравствуйте, S{i}!", MENU]
        for case in cases:
            await customer_says(url, "2", case_id=case)
        for case in cases:
            await wait_bot_messages(state, case, 3, timeout=20)
            assert len(bot_texts(state, case)) == 3

        async def one_owner() -> bool:
            owners = await leases_by_owner(settings)
            return len([o for o in owners if o.startswith(f"{settings.amqp_namespace}.chat.inbound")]) == 1

        await eventually(one_owner, what="the remaining dialog replica holding every inbound partition")
    finally:
        if staying is not None:
            staying.terminate()
        for service in reversed(services):
            await service.stop()
