"""The chaos suite's shared cluster (one per module: starting eight processes costs seconds) and
the table of results, printed at the end of the run whether or not output is captured."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from tests.chaos.cluster import ChaosError, Cluster
from tests.chaos.stream import TALLIES, render_table


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    log_dir = tmp_path_factory.mktemp("chaos")
    async with aiohttp.ClientSession() as http:
        running = Cluster(log_dir, http)
        try:
            await running.start()
        except Exception as exc:
            await running.stop()
            raise ChaosError(f"the cluster did not start: {exc}\n{running.logs()}") from exc
        yield running
        await running.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLIES:
        return
    terminalreporter.section("chaos")
    terminalreporter.write_line(render_table(TALLIES))
    for tally in TALLIES:
        terminalreporter.write_line(f"{tally.fault}: {tally.note}")
