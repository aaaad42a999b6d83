"""Ingress's metrics and trace root: one middleware around the webhook route.

Every webhook answer is counted (`omnibot_webhooks_total{channel, result}`, the reason of a
refusal in `omnibot_webhook_rejections_total{reason}`), and each webhook is the root span of its
customer message's trace. The span is named after the route template: the path itself holds the
channel's secret. The channel label is the channel id only once the handler verified the channel
(`VERIFIED_CHANNEL`); anything else is "unknown", so guessed URLs cannot grow the label set.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry.trace import SpanKind

from omnibot.ingress.routes import VERIFIED_CHANNEL, WEBHOOK_PATH
from omnibot.shared import metrics, telemetry

_REASONS_BY_STATUS = {
    400: "invalid_body",
    408: "body_timeout",
    404: "not_found",
    409: "channel_inactive",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def _is_webhook(request: web.Request) -> bool:
    if request.method != "POST":
        return False
    route = request.match_info.route
    return route.resource is not None and route.resource.canonical == WEBHOOK_PATH


def _record(request: web.Request, status: int) -> None:
    channel = str(request.get(VERIFIED_CHANNEL, "unknown"))
    if 200 <= status < 300:
        metrics.record_webhook(channel, "accepted")
    elif status >= 500:
        metrics.record_webhook(channel, "unavailable")
    else:
        metrics.record_webhook(channel, "rejected", _REASONS_BY_STATUS.get(status, f"http_{status}"))


@web.middleware
async def observe_webhooks(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_webhook(request):
        return await handler(request)
    with telemetry.span(
        "omnibot.ingress",
        f"POST {WEBHOOK_PATH}",
        kind=SpanKind.SERVER,
        root=True,  # a header from the internet does not get to choose our trace
        attributes={"http.request.method": "POST", "http.route": WEBHOOK_PATH},
    ) as span:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _record(request, exc.status)
            telemetry.set_attributes(span, **{"http.response.status_code": exc.status})
            raise
        _record(request, response.status)
        channel = request.get(VERIFIED_CHANNEL)
        telemetry.set_attributes(span, **{"http.response.status_code": response.status})
        if channel is not None:
            telemetry.set_attributes(span, **{"omnibot.channel_id": int(channel)})
        if response.status >= 500:
            telemetry.set_error(span, f"answered {response.status}")
        return response
