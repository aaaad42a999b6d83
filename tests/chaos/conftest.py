"""The chaos suite's RabbitMQ nodes and clusters (one per module: starting nodes and eight
processes costs seconds), and the table of results, printed at the end of the run whether or not
output is captured.

Every node is the suite's own (nodes.py), never the machine's shared broker. The fixtures stop
their nodes on the way out, whatever happened; pytest_sessionfinish stops any node still running
(an interrupted run), so that `epmd -names` lists only the machine's own node afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.chaos.cluster import ChaosError, Cluster
from tests.chaos.nodes import RabbitNode, start_cluster, stop_all_started
from tests.chaos.stream import TALLIES, render_table


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rabbit_nodes(request: pytest.FixtureRequest) -> AsyncIterator[list[RabbitNode]]:
    """The module's own RabbitMQ nodes: `NODES` of them (default 1), clustered when several."""
    count = getattr(request.module, "NODES", 1)
    # Not under pytest's tmp_path: the nodes run as the rabbitmq user, which cannot enter it.
    base = Path(tempfile.mkdtemp(prefix="omnibot-chaos-rabbit-"))
    try:
        yield await start_cluster(base, count)
    finally:
        stop_all_started()
        shutil.rmtree(base, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, rabbit_nodes: list[RabbitNode]
) -> AsyncIterator[Cluster]:
    log_dir = tmp_path_factory.mktemp("chaos")
    several = len(rabbit_nodes) > 1
    async with aiohttp.ClientSession() as http:
        running = Cluster(
            log_dir,
            http,
            rabbit_nodes,
            node_proxies=several,
            mongo_proxies=getattr(request.module, "MONGO_PROXIES", False),
        )
        try:
            await running.start()
        except Exception as exc:
            await running.stop()
            raise ChaosError(f"the cluster did not start: {exc}\n{running.logs()}") from exc
        try:
            yield running
        finally:
            await running.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_all_started()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLIES:
        return
    terminalreporter.section("chaos")
    terminalreporter.write_line(render_table(TALLIES))
    for tally in TALLIES:
        terminalreporter.write_line(f"{tally.fault}: {tally.note}")
