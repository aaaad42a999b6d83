"""The quorum-queue tests run on a RabbitMQ node of their own, never on the machine's shared broker.

Declaring, draining and deleting quorum queues (each one a Raft cluster) wedged the shared
RabbitMQ 3.10.8 node of these machines three times: connections accepted, never served, for
every run on the machine. The rest of the suite declares classic queues there (tests/conftest.py);
what is specific to quorum queues runs here, on a node started for the session with its own name,
ports and directories (the chaos suite's `RabbitNode`), and stopped at the end whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from omnibot.shared.settings import Settings
from tests.chaos.nodes import CTL_TIMEOUT_S, STARTED, RabbitNode


@pytest.fixture(scope="session")
def own_rabbit() -> Iterator[RabbitNode]:
    # Not under pytest's tmp_path: the node runs as the rabbitmq user, which cannot enter it.
    base = Path(tempfile.mkdtemp(prefix="omnibot-quorum-rabbit-"))
    node = RabbitNode(base, "quorum")
    try:
        asyncio.run(node.start())
        yield node
    finally:
        subprocess.run(
            ["rabbitmqctl", "-n", node.name, "stop"], capture_output=True, timeout=CTL_TIMEOUT_S, check=False
        )
        if node.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGKILL)
        STARTED.pop(node.name, None)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def settings(settings: Settings, own_rabbit: RabbitNode) -> Settings:
    """The suite's settings, pointed at this directory's own node and declaring quorum queues."""
    return msgspec.structs.replace(settings, amqp_url=own_rabbit.url, amqp_queue_type="quorum")
