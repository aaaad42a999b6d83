"""One customer message, one trace: ingress, dialog and egress as separate processes exporting
over OTLP/HTTP to a real receiver (an aiohttp server decoding OTLP protobuf)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.channels import management
from omnibot.testkit.ports import free_port
from omnibot.testkit.processes import ServiceProcess
from tests.harness import add_rules, customer_says, wait_bot_messages

WEBHOOK_SPAN = "POST /webhooks/omnidesk/{channel_id}/{secret}"
SHOP_HEADER_SECRET = "shop-header-secret-" + uuid.uuid4().hex[:8]
SHOP_QUERY_SECRET = "shop-query-secret-" + uuid.uuid4().hex[:8]


@dataclass
class Span:
    service: str
    scope: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    texts: list[str] = field(default_factory=list)  # every string the exported span carries


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


class OtlpReceiver:
    """The OTLP/HTTP traces endpoint (`POST /v1/traces`, protobuf), keeping every span."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.changed = asyncio.Event()

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        for resource_spans in export.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    texts = [span.name, span.status.message, *map(str, resource.values())]
                    texts += [f"{k}={v}" for k, v in attributes.items()]
                    texts += [e.name for e in span.events]
                    texts += [f"{a.key}={_value(a.value)}" for e in span.events for a in e.attributes]
                    self.spans.append(
                        Span(
                            service=str(resource.get("service.name")),
                            scope=scope_spans.scope.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes=attributes,
                            texts=texts,
                        )
                    )
        self.changed.set()
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    async def wait_for(self, predicate: Any, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[OtlpReceiver, str]]:
    otlp = OtlpReceiver()
    app = web.Application()
    app.router.add_post("/v1/traces", otlp.receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield otlp, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def shop() -> AsyncIterator[str]:
    """An order API an agent asks, wanting secrets in a header and in the query."""

    async def order(request: web.Request) -> web.Response:
        assert request.headers.get("X-Api-Key") == SHOP_HEADER_SECRET
        assert request.query.get("token") == SHOP_QUERY_SECRET
        return web.json_response({"status": "shipped"})

    app = web.Application()
    app.router.add_get("/orders/{order}", order)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def agent_file(shop: str) -> bytes:
    return json.dumps(
        {
            "format": "omnibot/agent@1",
            "name": "traced",
            "start": "hello",
            "slots": [
                {"id": "hello", "type": "text", "text": "Здравствуйте!", "next": "ask"},
                {
                    "id": "ask",
                    "type": "input",
                    "text": "Номер заказа?",
                    "variable": "order_id",
                    "pattern": "^[0-9]+$",
                    "retry_text": "Только цифры",
                    "next": "check",
                },
                {
                    "id": "check",
                    "type": "external_request",
                    "method": "GET",
                    "url": f"{shop}/orders/{{{{order_id}}}}?token={SHOP_QUERY_SECRET}",
                    "headers": {"X-Api-Key": SHOP_HEADER_SECRET},
                    "auth": {"basic": "{{channel_webhook_token}}"},
                    "timeout_s": 5,
                    "save": {"order_status": "status"},
                    "next": "say",
                    "on_error": "say",
                },
                {"id": "say", "type": "end", "text": "Статус: {{order_status}}"},
            ],
        }
    ).encode()


def ancestors(span: Span, by_id: dict[str, Span]) -> list[Span]:
    chain = []
    while span.parent_id and span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


async def test_one_customer_message_is_one_trace_across_the_services(
    settings: Settings,
    broker: object,
    db: object,
    sandbox: tuple[SandboxState, str],
    receiver: tuple[OtlpReceiver, str],
    shop: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    otlp, otlp_url = receiver
    state, sandbox_url = sandbox
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    ops, client = await management(settings)
    try:
        await ops.agents.import_agent(agent_file(shop), publish=True)
        created = await ops.channels.create_channel(
            title="Traced",
            domain=sandbox_url,
            api_key=state.api_key,
            email=state.bot_email,
            agent="traced",
            activate=False,
            bot_label_id=state.bot_label_id,
        )
    finally:
        await client.close()
    channel_id = created.id
    processes = [ServiceProcess(name, settings, tmp_path) for name in ("ingress", "dialog", "egress")]
    try:
        for process, line in zip(
            processes, ("ingress listening", "dialog consuming", "egress consuming"), strict=True
        ):
            await process.wait_log(line)
            await process.wait_log("tracing on")
        ops, client = await management(settings)
        try:
            activated = await ops.channels.activate_channel(channel_id)
        finally:
            await client.close()
        assert activated.active, activated.checks
        channel = msgspec.to_builtins(activated)
        await add_rules(sandbox_url, channel["webhook_url"])

        case = (await customer_says(sandbox_url, "Здравствуйте"))["case_id"]
        await wait_bot_messages(state, case, 2)
        await customer_says(sandbox_url, "4711", case_id=case)
        assert (await wait_bot_messages(state, case, 3))[-1] == "Статус: shipped"

        def the_trace() -> list[Span] | None:
            requests = [s for s in otlp.spans if s.name == "external_request GET"]
            if not requests:
                return None
            trace = [s for s in otlp.spans if s.trace_id == requests[0].trace_id]
            ids = {s.span_id for s in trace}
            complete = all(not s.parent_id or s.parent_id in ids for s in trace)
            replies = [s for s in trace if s.name == "egress deliver reply"]
            return trace if replies and complete else None

        await otlp.wait_for(lambda: the_trace() is not None, 20)
        trace = the_trace()
        assert trace is not None
    finally:
        # In threads: the receiver must go on answering the exporters' last flush meanwhile.
        await asyncio.gather(*(p.stop() for p in processes))

    by_id = {s.span_id: s for s in trace}
    roots = [s for s in trace if not s.parent_id]
    assert [(r.name, r.service) for r in roots] == [(WEBHOOK_SPAN, "ingress")]
    root = roots[0]
    assert root.attributes["http.route"] == WEBHOOK_SPAN.removeprefix("POST ")
    assert root.attributes["omnibot.channel_id"] == channel["id"]
    for span in trace:
        if span is not root:
            assert span.parent_id in by_id, f"{span.name} ({span.service}) has a parent outside the trace"
            assert ancestors(span, by_id)[-1] is root

    def one(name: str, service: str) -> Span:
        found = [s for s in trace if s.name == name and s.service == service]
        assert found, f"no {name!r} span from {service}: {sorted({(s.service, s.name) for s in trace})}"
        return found[0]

    publish_inbound = one("chat.inbound publish", "ingress")
    assert publish_inbound.parent_id == root.span_id
    turn = one("dialog turn", "dialog")
    assert by_id[turn.parent_id].name == "chat.inbound process"
    assert by_id[by_id[turn.parent_id].parent_id] is publish_inbound
    request = one("external_request GET", "dialog")
    assert turn in ancestors(request, by_id)
    assert request.attributes["server.address"] == "127.0.0.1"
    deliver = one("egress deliver reply", "egress")
    assert turn in ancestors(deliver, by_id)
    omnidesk_calls = [s for s in trace if s.service == "egress" and s.name.startswith("Omnidesk POST")]
    assert omnidesk_calls and all(deliver in ancestors(s, by_id) for s in omnidesk_calls)
    assert any(s.scope.startswith("opentelemetry.instrumentation.pymongo") for s in trace)
    assert any(s.service == "dialog" and s.name.startswith("Omnidesk GET") for s in trace)  # confirm mode

    webhook_secret = channel["webhook_url"].rstrip("/").rsplit("/", 1)[1]
    token = f"{state.bot_email}:{state.api_key}"
    secrets = {
        webhook_secret,
        state.api_key,
        token,
        base64.b64encode(token.encode()).decode(),
        SHOP_HEADER_SECRET,
        SHOP_QUERY_SECRET,
    }
    for span in otlp.spans:  # every span exported, not only this trace's
        for text in span.texts:
            for secret in secrets:
                assert secret not in text, f"a secret in {span.service}'s span {span.name!r}: {text!r}"

    # Log lines inside the trace carry its id.
    egress_log = processes[2].log_path.read_text()
    assert f"trace_id={root.trace_id}" in egress_log
