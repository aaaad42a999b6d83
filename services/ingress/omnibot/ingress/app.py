"""Builds the ingress aiohttp application from its dependencies (no globals, no I/O here)."""

from __future__ import annotations

from aiohttp import web

from omnibot.ingress.observe import observe_webhooks
from omnibot.ingress.rejections import RejectionLog
from omnibot.ingress.routes import BODY_TIMEOUT, CHANNELS, MAX_BODY, PUBLISHER, REJECTIONS, add_routes
from omnibot.shared.amqp import Publisher
from omnibot.shared.channel_cache import ChannelDirectory


def build_app(
    *,
    publisher: Publisher,
    channels: ChannelDirectory,
    max_body_bytes: int,
    body_timeout_s: float = 10.0,
    rejections: RejectionLog | None = None,
) -> web.Application:
    # aiohttp refuses larger bodies itself (413) before our handler reads them.
    app = web.Application(client_max_size=max_body_bytes, middlewares=[observe_webhooks])
    app[PUBLISHER] = publisher
    app[CHANNELS] = channels
    app[MAX_BODY] = max_body_bytes
    app[BODY_TIMEOUT] = body_timeout_s
    app[REJECTIONS] = rejections or RejectionLog()
    add_routes(app)
    return app
