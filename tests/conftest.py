"""Test infrastructure: a real RabbitMQ and a real MongoDB-protocol server, isolated per test.

- RabbitMQ: AMQP_URL (default: the local broker); each test gets its own name prefix.
- MongoDB: MONGODB_URL when set; else a MongoDB container when a Docker engine answers; else one
  SecantusDB process for the session (see ../shared/docs/environment.md). Each test gets its own
  database.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from omnibot.shared.crypto import generate_key
from omnibot.shared.devmongo import throwaway_server
from omnibot.shared.settings import Settings
from omnibot.shared.topology import Topology, delete_topology
from omnibot.testkit.ports import free_port

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
# The queues each test declares on the machine's shared broker. Quorum queues are the product's
# default, and everything specific to them runs on them, on RabbitMQ nodes of their own
# (tests/integration/quorum/ and the whole chaos suite). The hundreds of
# per-test topologies of the rest are classic: on this RabbitMQ 3.10.8 single node, the churn of
# declaring and deleting thousands of quorum queues (each a Raft cluster) wedged the shared broker
# three times, once with this suite running alone (connections accepted, never served). Set
# OMNIBOT_TEST_QUEUE_TYPE=quorum to run the whole suite on quorum queues.
TEST_QUEUE_TYPE: Literal["quorum", "classic"] = (
    "quorum" if os.environ.get("OMNIBOT_TEST_QUEUE_TYPE") == "quorum" else "classic"
)


def _docker_engine_answers() -> bool:
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=2)
    except Exception:
        return False
    try:
        client.ping()
    except Exception:
        return False
    finally:
        client.close()
    return True


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    if os.environ.get("MONGODB_URL"):
        yield os.environ["MONGODB_URL"]
        return
    if _docker_engine_answers():
        from testcontainers.mongodb import MongoDbContainer

        with MongoDbContainer("mongo:8") as container:
            yield container.get_connection_url()
        return
    with throwaway_server() as url:
        yield url


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(mongo_url: str, unique: str) -> Settings:
    ingress_port = free_port()
    return Settings(
        amqp_url=AMQP_URL,
        amqp_namespace=f"test-{unique}",
        mongodb_url=mongo_url,
        mongodb_db=f"omnibot_test_{unique}",
        public_base_url=f"http://127.0.0.1:{ingress_port}",
        ingress_host="127.0.0.1",
        ingress_port=ingress_port,
        secret_key=generate_key(),
        chat_partitions=4,
        omnidesk_allow_http=True,
        omnidesk_timeout_s=3.0,
        external_request_allow_networks="127.0.0.0/8",
        shutdown_timeout_s=5.0,
        # Never the default 9090: test processes (and other runs on this machine) would collide.
        metrics_host="127.0.0.1",
        metrics_port=0,
        amqp_queue_type=TEST_QUEUE_TYPE,
        data_dir=tempfile.mkdtemp(prefix="omnibot-data-"),
    )


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[aio_pika.abc.AbstractRobustConnection]:
    """A connection for the test itself; removes the test's queues and exchanges afterwards."""
    connection = await aio_pika.connect_robust(settings.amqp_url)
    yield connection
    async with connection.channel() as channel:
        await delete_topology(channel, Topology.build(settings.amqp_namespace, settings.chat_partitions))
    await connection.close()


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[object]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    yield client[settings.mongodb_db]
    await client.drop_database(settings.mongodb_db)
    await client.close()


async def take_all(
    channel: aio_pika.abc.AbstractChannel, queue_name: str, timeout_s: float = 10.0
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message now in a queue, taken off it. By a consumer: quorum queues with
    single-active-consumer refuse basic.get. As many as the queue holds at the start."""
    import asyncio

    queue = await channel.declare_queue(queue_name, passive=True)
    count = queue.declaration_result.message_count or 0
    found: list[aio_pika.abc.AbstractIncomingMessage] = []
    if count == 0:
        return found
    async with asyncio.timeout(timeout_s), queue.iterator(no_ack=True) as messages:
        async for message in messages:
            found.append(message)
            if len(found) == count:
                break
    return found
