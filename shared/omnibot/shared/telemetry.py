"""Tracing with OpenTelemetry: set-up, the context carried across the queues, and span helpers.

One trace per customer message: ingress's webhook span is the root, the context travels in the
AMQP message headers (W3C `traceparent`), dialog's turn and egress's deliveries continue it, and
Omnidesk calls (the aiohttp client instrumentation, on the Omnidesk sessions only), MongoDB calls
(the pymongo instrumentation) and agents' external requests (a span of our own that names the
host only: their paths, queries and headers may carry credentials) are children of those.

Tracing is on only when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (OTLP over HTTP). Off, nothing here is installed and
the helpers return before touching the OpenTelemetry API, so it costs a flag test. The standard
variables are honoured by the SDK itself: `OTEL_SERVICE_NAME` (default: the role),
`OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`, `OTEL_RESOURCE_ATTRIBUTES`.

Nothing secret goes into a span: the webhook span is named after the route template, not the path
(which holds the channel's secret); Omnidesk URLs lose their query; no headers are recorded.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import aiohttp
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

log = logging.getLogger(__name__)

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class _State:
    enabled = False
    provider: Any = None


_state = _State()


def enabled() -> bool:
    return _state.enabled


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


def configure_tracing(role: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install the SDK, the OTLP exporter and the instrumentations, if the environment asks.

    Once per process, before the services open their clients (pymongo's listener applies to
    clients created afterwards). Returns whether tracing is on."""
    environ = os.environ if environ is None else environ
    if _state.enabled or not wanted(environ):
        return _state.enabled
    # Imported here: a process without tracing never loads the SDK or the exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from omnibot.shared.metrics import VERSION

    name = environ.get("OTEL_SERVICE_NAME", "").strip() or role
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name, SERVICE_VERSION: VERSION}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # Statements stay out of spans: documents hold encrypted keys and customers' words.
    PymongoInstrumentor().instrument(tracer_provider=provider, capture_statement=False)
    for handler in logging.getLogger().handlers:
        handler.addFilter(TraceIdFilter())
    _state.enabled, _state.provider = True, provider
    log.info("tracing on: exporting over OTLP/HTTP as service %r", name)
    return True


def shutdown_tracing() -> None:
    """Flush the spans still buffered (at the end of the process)."""
    if _state.provider is not None:
        _state.provider.shutdown()


class TraceIdFilter(logging.Filter):
    """Puts `trace_id` on every log record made inside a sampled span."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = format(span_context.trace_id, "032x")
        return True


def client_trace_configs() -> list[aiohttp.TraceConfig]:
    """Trace configs for an Omnidesk `ClientSession`: a span per call, the URL without its query."""
    if not _state.enabled:
        return []
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config
    from yarl import URL

    def without_query(url: URL) -> str:
        return str(url.with_user(None).with_query(None).with_fragment(None))

    def name_span(span: Span, params: aiohttp.TraceRequestStartParams) -> None:
        if span.is_recording():
            span.update_name(f"Omnidesk {params.method} {params.url.path}")

    return [create_trace_config(url_filter=without_query, request_hook=name_span)]


def inject(headers: MutableMapping[str, Any]) -> None:
    """Write the current trace context (`traceparent`) into AMQP message headers."""
    if _state.enabled:
        propagate.inject(headers)


@contextlib.contextmanager
def span(
    tracer_name: str,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    parent_headers: Mapping[str, Any] | None = None,
    root: bool = False,
) -> Iterator[Span | None]:
    """A span around a block (None when tracing is off). `parent_headers`: continue the trace
    those AMQP headers carry; `root`: start a new trace whatever the ambient context."""
    if not _state.enabled:
        yield None
        return
    parent = None
    if parent_headers is not None:
        parent = propagate.extract({k: v for k, v in parent_headers.items() if isinstance(v, str)})
    elif root:
        parent = otel_context.Context()
    tracer = trace.get_tracer(tracer_name)
    # Exceptions are not recorded as such: their text may quote what a library was given.
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=dict(attributes or {}),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except Exception as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def set_attributes(current: Span | None, **attributes: str | int | float | bool) -> None:
    if current is not None and current.is_recording():
        current.set_attributes(attributes)


def set_error(current: Span | None, description: str) -> None:
    """Mark a span failed; the description must already be safe to show (bounded, no secret)."""
    if current is not None and current.is_recording():
        current.set_status(Status(StatusCode.ERROR, description[:200]))
