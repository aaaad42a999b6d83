"""`METRICS_ENABLED=false`: nothing is recorded, `/metrics` answers 404, and the pipeline works as ever."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
from prometheus_client import REGISTRY

from omnibot.sandbox.state import SandboxState
from omnibot.shared import metrics
from omnibot.shared.settings import Settings
from omnibot.testkit.ports import free_port
from omnibot.testkit.processes import ServiceProcess
from omnibot.testkit.services import monitoring_listener, running_services
from tests.harness import add_rules, customer_says, setup_channel, wait_bot_messages


def omnibot_samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of omnibot's own families in this process's registry (build info aside)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in REGISTRY.collect()
        if family.name.startswith("omnibot_") and family.name != "omnibot_build_info"
        for sample in family.samples
    }


@pytest.fixture
def metrics_off() -> Iterator[None]:
    metrics.configure(enabled=False)
    try:
        yield
    finally:
        metrics.configure(enabled=True)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_with_metrics_off_a_conversation_goes_through_and_nothing_is_recorded(
    settings: Settings,
    broker: object,
    db: object,
    sandbox: tuple[SandboxState, str],
    metrics_off: None,
    http: aiohttp.ClientSession,
) -> None:
    state, url = sandbox
    before = omnibot_samples()
    async with running_services(settings), monitoring_listener(settings) as port:
        channel = await setup_channel(settings, state, url)
        await add_rules(url, channel["webhook_url"])
        case = (await customer_says(url, "Добрый день"))["case_id"]
        assert len(await wait_bot_messages(state, case, 2)) == 2
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 404
            assert "METRICS_ENABLED=false" in await response.text()
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert response.status == 200, await response.text()
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
    # Webhook, turns, deliveries, Omnidesk calls, reply latency, partitions: none of it counted.
    assert omnibot_samples() == before


async def test_metrics_enabled_false_in_the_environment_turns_a_process_s_metrics_off(
    settings: Settings, broker: object, db: object, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    off = msgspec.structs.replace(settings, metrics_port=port, metrics_enabled=False)
    assert off.to_env()["METRICS_ENABLED"] == "false"
    process = ServiceProcess("ingress", off, tmp_path)
    try:
        await process.wait_log(f"metrics listening on 127.0.0.1:{port} (/healthz, /readyz; metrics off)")
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 404
        await process.wait_log("ingress listening")
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert response.status == 200, await response.text()
    finally:
        await process.stop()
