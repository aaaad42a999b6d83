"""Metrics as Prometheus sees them: a real Prometheus server scraping `omnibot run all`.

Also checks the exposition with `promtool check metrics`, that the webhook port serves no
metrics, health or readiness, and that every metric the dashboard and the alerting rules name is
one the process exports.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.ports import free_port
from omnibot.testkit.processes import ServiceProcess
from tests.harness import ROOT, add_rules, customer_says, setup_channel, wait_bot_messages

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus")

METRIC_NAME = re.compile(r"\b(omnibot_[a-z_]+|process_[a-z_]+)\b")


def names_in_monitoring_files() -> set[str]:
    """Every metric name that the dashboard and the alerting rules use."""
    text = (ROOT / "deploy/grafana/dashboards/omnibot.json").read_text()
    text += (ROOT / "deploy/prometheus/omnibot-rules.yml").read_text()
    return set(METRIC_NAME.findall(text))


def exported_names(exposition: str) -> set[str]:
    """Sample names a scrape may carry: each declared family with its type's suffixes."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            names.add(family)
            if kind == "histogram":
                names.update(f"{family}_{suffix}" for suffix in ("bucket", "count", "sum"))
            if kind == "counter" and not family.endswith("_total"):
                names.add(f"{family}_total")
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
async def run_all(
    settings: Settings, metrics_port: int, broker: object, db: object, tmp_path: Path
) -> AsyncIterator[ServiceProcess]:
    settings = msgspec.structs.replace(settings, metrics_port=metrics_port, admin_port=free_port())
    process = ServiceProcess("all", settings, tmp_path)
    yield process
    await process.stop()


@pytest.fixture
async def prometheus(metrics_port: int) -> AsyncIterator[str]:
    """A real Prometheus scraping the process's listener every 500 ms; yields its base URL."""
    workdir = Path(tempfile.mkdtemp(prefix="omnibot-prometheus-"))
    (workdir / "prometheus.yml").write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"},
                "rule_files": [str(ROOT / "deploy/prometheus/omnibot-rules.yml")],
                "scrape_configs": [
                    {"job_name": "omnibot", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}
                ],
            }
        )
    )
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    server = await asyncio.create_subprocess_exec(
        "prometheus",
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await until(
            lambda: http_status(f"{url}/-/ready"), lambda status: status == 200, 30, "prometheus ready"
        )
        yield url
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 10)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def http_status(url: str) -> int:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def until(fetch: Any, good: Any, timeout: float, what: str) -> Any:
    """Poll a remote process (there is no event to wait on) until `good(value)`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fetch()
        if good(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what}: last seen {value!r}")
        await asyncio.sleep(0.2)


async def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{prometheus}/api/v1/query", params={"query": expr}) as response,
    ):
        body = await response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def scrape(port: int) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return await r.text()


async def test_prometheus_sees_a_sandbox_conversation(
    settings: Settings,
    run_all: ServiceProcess,
    metrics_port: int,
    prometheus: str,
    sandbox: tuple[SandboxState, str],
) -> None:
    state, sandbox_url = sandbox
    await run_all.wait_log(f"metrics listening on 127.0.0.1:{metrics_port}")
    await run_all.wait_log("egress consuming")
    await run_all.wait_log("dialog consuming")
    await run_all.wait_log("ingress listening")
    channel = await setup_channel(settings, state, sandbox_url)
    await add_rules(sandbox_url, channel["webhook_url"])

    case = (await customer_says(sandbox_url, "Здравствуйте"))["case_id"]
    await wait_bot_messages(state, case, 1)

    counts = await until(
        lambda: query(prometheus, "omnibot_reply_latency_seconds_count"),
        lambda result: bool(result) and float(result[0]["value"][1]) >= 1,
        30,
        "reply latency in prometheus",
    )
    assert counts[0]["metric"]["job"] == "omnibot"
    accepted = await query(prometheus, 'omnibot_webhooks_total{result="accepted"}')
    assert accepted and accepted[0]["metric"]["channel"] == str(channel["id"])
    owned = await query(prometheus, "sum by (stage) (omnibot_partitions_owned)")
    assert {r["metric"]["stage"]: r["value"][1] for r in owned} == {"chat.inbound": "4", "chat.outbound": "4"}
    rules = await query(prometheus, "ALERTS")  # the rules loaded and evaluate (nothing fires here)
    assert all(
        r["metric"]["alertname"] != "OmnibotPartitionWithoutConsumer"
        for r in rules
        if r["metric"]["alertstate"] == "firing"
    )

    exposition = await scrape(metrics_port)
    promtool = await asyncio.create_subprocess_exec(
        "promtool",
        "check",
        "metrics",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(promtool.communicate(exposition.encode()), 30)
    assert promtool.returncode == 0, output.decode()

    missing = names_in_monitoring_files() - exported_names(exposition)
    assert not missing, f"named in the dashboard or rules but not exported: {sorted(missing)}"
    for family in ("omnibot_build_info", "process_resident_memory_bytes", "omnibot_queue_messages"):
        assert family in exposition

    # The webhook port faces the internet: no metrics, health or readiness there.
    for path in ("/metrics", "/healthz", "/readyz"):
        assert await http_status(f"http://127.0.0.1:{settings.ingress_port}{path}") == 404, path
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{metrics_port}/readyz") as ready:
            body = await ready.json()
            assert ready.status == 200, body
            assert set(body["services"]) == {"ingress", "dialog", "egress", "admin"}
        async with session.get(f"http://127.0.0.1:{metrics_port}/healthz") as alive:
            assert alive.status == 200
