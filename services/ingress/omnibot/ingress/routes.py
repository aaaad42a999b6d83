"""HTTP routes of ingress: the channels' webhook URLs, and nothing else.

A webhook is answered 200 only after RabbitMQ confirmed the persistent message; every refusal is a
JSON 4xx and publishes nothing; a broker problem is a 503 so Omnidesk (or its operator) tries again.
This port faces the internet: health, readiness and metrics are on the process's monitoring
listener (`omnibot.shared.probes`, METRICS_PORT), and any other path here is a 404.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Callable

from aiohttp import web

from omnibot.ingress.rejections import RejectionLog
from omnibot.ingress.webhook import InvalidWebhook, decode_webhook
from omnibot.shared.amqp import Publisher
from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.channels import Channel
from omnibot.shared.crypto import fingerprint, same_secret
from omnibot.shared.errors import TransientError
from omnibot.shared.ids import parse_channel_id
from omnibot.shared.logs import bind
from omnibot.shared.messages import chat_key, encoder

log = logging.getLogger(__name__)

PUBLISHER = web.AppKey("publisher", Publisher)
CHANNELS = web.AppKey("channels", ChannelDirectory)
MAX_BODY = web.AppKey("max_body", int)
BODY_TIMEOUT = web.AppKey("body_timeout", float)
REJECTIONS = web.AppKey("rejections", RejectionLog)

# Compared against when there is no channel, so an unknown id costs what a wrong secret costs.
_NO_FINGERPRINT = "0" * 64
# Set once the channel and its secret are verified: the metrics label the webhook with it.
VERIFIED_CHANNEL = web.RequestKey("verified_channel", int)

WEBHOOK_PATH = "/webhooks/omnidesk/{channel_id}/{secret}"


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


NOT_FOUND = ("not_found", "no such webhook: check the Chatbot webhook URL in the Omnidesk rule")


async def _find_channel(app: web.Application, raw_channel: str, secret: str) -> tuple[Channel | None, bool]:
    """The channel and whether `secret` is its webhook secret.

    An unknown id and a wrong secret take the same path at the same cost (a cache lookup, a hash
    comparison, a re-check from the shared budget), so timing tells a scanner nothing and neither
    refusal costs a MongoDB read once the budget is spent."""
    given = fingerprint(secret)
    channel_id = parse_channel_id(raw_channel)
    if channel_id is None:
        hmac.compare_digest(given, _NO_FINGERPRINT)
        return None, False
    directory = app[CHANNELS]
    channel = await directory.get(channel_id)
    if _accepts(channel, given):
        return channel, True
    # The cache only accepts; a refusal is checked against a fresh read first (budgeted).
    channel = await directory.recheck(channel_id)
    stored = channel.webhook_secret_hash if channel is not None else _NO_FINGERPRINT
    return channel, hmac.compare_digest(given, stored) and channel is not None


def _accepts(channel: Channel | None, given: str) -> bool:
    stored = channel.webhook_secret_hash if channel is not None else _NO_FINGERPRINT
    return hmac.compare_digest(given, stored) and channel is not None and channel.active


def refuse(app: web.Application, status: int, code: str, message: str) -> web.Response:
    app[REJECTIONS].record(code)
    return error(status, code, message)


async def receive_webhook(request: web.Request) -> web.Response:
    app = request.app
    try:
        channel, secret_ok = await _find_channel(
            app, request.match_info["channel_id"], request.match_info["secret"]
        )
    except TransientError:
        log.warning("channel lookup failed", exc_info=True)
        return error(503, "unavailable", "temporarily unable to accept webhooks; try again")
    # The same answer for an unknown channel and a wrong secret: the URL reveals nothing.
    if channel is None or not secret_ok:
        return refuse(app, 404, *NOT_FOUND)
    channel_id = channel.id
    request[VERIFIED_CHANNEL] = channel_id
    if not channel.active:
        return refuse(app, 409, "channel_inactive", "this channel is not active; activate it in omnibot")
    if request.content_type != "application/json":
        return refuse(app, 415, "unsupported_media_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > app[MAX_BODY]:
        return refuse(app, 413, "too_large", f"the body is larger than {app[MAX_BODY]} bytes")
    try:
        # A client trickling its body must not hold the request (and its memory) for ever.
        async with asyncio.timeout(app[BODY_TIMEOUT]):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return refuse(app, 413, "too_large", f"the body is larger than {app[MAX_BODY]} bytes")
    except TimeoutError:
        response = refuse(app, 408, "body_timeout", f"the body did not arrive within {app[BODY_TIMEOUT]} s")
        response.force_close()
        return response
    event_id = uuid.uuid4().hex
    try:
        inbound = decode_webhook(body, channel_id=channel_id, event_id=event_id, received_at=time.time())
    except InvalidWebhook as exc:
        return refuse(app, 400, "invalid_body", str(exc))
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
    app = request.app
    raw_channel = request.match_info["channel_id"]
    channel_id = parse_channel_id(raw_channel)
    try:
        # Activation asks right after a change: read afresh (from the same budget as refusals).
        channel = None if channel_id is None else await app[CHANNELS].recheck(channel_id)
    except TransientError:
        return error(503, "unavailable", "temporarily unable to look up the channel")
    stored = channel.webhook_secret_hash if channel is not None else _NO_FINGERPRINT
    if not same_secret(request.match_info["secret"], stored) or channel is None:
        return refuse(app, 404, *NOT_FOUND)
    return web.json_response({"status": "registered", "active": channel.active})


def readiness(publisher: Publisher) -> Callable[[], bool]:
    """What ingress reports to the monitoring listener's /readyz: ready while the broker can
    confirm publishes (a webhook would get a 503 otherwise)."""
    return lambda: publisher.is_ready


def add_routes(app: web.Application) -> None:
    app.router.add_post(WEBHOOK_PATH, receive_webhook)
    app.router.add_get(WEBHOOK_PATH, probe_webhook)
