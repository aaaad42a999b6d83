"""Chaos on a three-node RabbitMQ cluster of the suite's own, the queues quorum queues: the same
stream of customer messages and the same table as the single-node scenarios (test_chaos.py).

Every process reaches the nodes through a TCP proxy per node (`AMQP_URL` lists all three, each
process starting at another), so the suite can cut one node's path without touching the node.
Scenarios: the node leading most partition queues SIGKILLed mid-stream; all three nodes restarted
one after the other; the path to one node cut, so that the processes connected through it must
reconnect to another node. Every row must be zeros.
"""

from __future__ import annotations

import pytest

from tests.chaos.cluster import Cluster, cut_node_path, kill_leading_node, rolling_restart
from tests.chaos.phase import check, run_phase

pytestmark = pytest.mark.asyncio(loop_scope="module")
NODES = 3


@pytest.mark.timeout(240)  # includes starting and clustering the nodes
async def test_node_leading_most_partitions_killed(cluster: Cluster) -> None:
    check(await run_phase(cluster, "cluster: leading node SIGKILL", kill_leading_node), cluster)


@pytest.mark.timeout(180)
async def test_rolling_restart_of_every_node(cluster: Cluster) -> None:
    check(await run_phase(cluster, "cluster: rolling restart", rolling_restart), cluster)


@pytest.mark.timeout(150)
async def test_path_to_one_node_cut(cluster: Cluster) -> None:
    check(await run_phase(cluster, "cluster: one node's path cut", cut_node_path), cluster)
