"""HTTP routes of ingress: the channels' webhook URLs and the health endpoints.

A webhook is answered 200 only after RabbitMQ confirmed the persistent message; every refusal is a
JSON 4xx and publishes nothing; a broker problem is a 503 so Omnidesk (or its operator) tries again.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from aiohttp import web

from omnibot.ingress.webhook import InvalidWebhook, decode_webhook
from omnibot.shared.amqp import Publisher
from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.crypto import same_secret
from omnibot.shared.errors import TransientError
from omnibot.shared.logs import bind
from omnibot.shared.messages import chat_key, encoder

log = logging.getLogger(__name__)

PUBLISHER = web.AppKey("publisher", Publisher)
CHANNELS = web.AppKey("channels", ChannelDirectory)
MAX_BODY = web.AppKey("max_body", int)
# Set once the channel and its secret are verified: the metrics label the webhook with it.
VERIFIED_CHANNEL = web.RequestKey("verified_channel", int)

WEBHOOK_PATH = "/webhooks/omnidesk/{channel_id}/{secret}"


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


NOT_FOUND = ("not_found", "no such webhook: check the Chatbot webhook URL in the Omnidesk rule")


async def receive_webhook(request: web.Request) -> web.Response:
    app = request.app
    raw_channel = request.match_info["channel_id"]
    if not raw_channel.isdigit() or len(raw_channel) > 12:
        return error(404, *NOT_FOUND)
    channel_id = int(raw_channel)
    secret = request.match_info["secret"]
    try:
        channel = await app[CHANNELS].get(channel_id)
        secret_ok = channel is not None and same_secret(secret, channel.webhook_secret_hash)
        if channel is not None and not (channel.active and secret_ok):
            # The cache only accepts; a refusal is checked against a fresh read first.
            channel = await app[CHANNELS].get(channel_id, fresh=True)
            secret_ok = channel is not None and same_secret(secret, channel.webhook_secret_hash)
    except TransientError:
        log.warning("channel lookup failed", exc_info=True)
        return error(503, "unavailable", "temporarily unable to accept webhooks; try again")
    # The same answer for an unknown channel and a wrong secret: the URL reveals nothing.
    if channel is None or not secret_ok:
        return error(404, *NOT_FOUND)
    request[VERIFIED_CHANNEL] = channel_id
    if not channel.active:
        return error(409, "channel_inactive", "this channel is not active; activate it in omnibot")
    if request.content_type != "application/json":
        return error(415, "unsupported_media_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > app[MAX_BODY]:
        return error(413, "too_large", f"the body is larger than {app[MAX_BODY]} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return error(413, "too_large", f"the body is larger than {app[MAX_BODY]} bytes")
    event_id = uuid.uuid4().hex
    try:
        inbound = decode_webhook(body, channel_id=channel_id, event_id=event_id, received_at=time.time())
    except InvalidWebhook as exc:
        return error(400, "invalid_body", str(exc))
    try:
        await app[PUBLISHER].publish(
            chat_key(channel_id, inbound.chat_id), encoder.encode(inbound), message_id=event_id
        )
    except TransientError:
        with bind(channel_id=channel_id, chat_id=inbound.chat_id, event_id=event_id):
            log.warning("webhook refused: broker unavailable", exc_info=True)
        return error(503, "broker_unavailable", "the message broker did not confirm; try again")
    # Debug only: a log line per accepted webhook costs as much as a quarter of the request.
    if log.isEnabledFor(logging.DEBUG):
        with bind(channel_id=channel_id, chat_id=inbound.chat_id, event_id=event_id):
            log.debug("webhook accepted")
    return web.json_response({"status": "accepted", "event_id": event_id})


async def probe_webhook(request: web.Request) -> web.Response:
    """GET on a webhook URL: is it served here? Used by channel activation; publishes nothing."""
    raw_channel = request.match_info["channel_id"]
    if not raw_channel.isdigit() or len(raw_channel) > 12:
        return error(404, *NOT_FOUND)
    try:
        channel = await request.app[CHANNELS].get(int(raw_channel), fresh=True)
    except TransientError:
        return error(503, "unavailable", "temporarily unable to look up the channel")
    if channel is None or not same_secret(request.match_info["secret"], channel.webhook_secret_hash):
        return error(404, *NOT_FOUND)
    return web.json_response({"status": "registered", "active": channel.active})


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    ready = request.app[PUBLISHER].is_ready
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "broker": ready}
    return web.json_response(body, status=200 if ready else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_post(WEBHOOK_PATH, receive_webhook)
    app.router.add_get(WEBHOOK_PATH, probe_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
