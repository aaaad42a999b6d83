"""The admin API's channel endpoints: create, change, delete, activate, deactivate, a new webhook secret."""

from __future__ import annotations

import msgspec
from aiohttp import web

from omnibot.admin.api.base import PREFIX, answer, error, ops
from omnibot.admin.api.openapi import Endpoint
from omnibot.admin.api.params import CHANNEL, CHANNEL_PATH, PAGE
from omnibot.admin.api.parsing import channel_id, only_page, read_body
from omnibot.admin.schemas import ChannelChanges, ChannelCreate, ChannelDeleted, ChannelView, Page


async def list_channels(request: web.Request) -> web.Response:
    limit, offset = only_page(request)
    return answer(await ops(request).channels.list_channels(limit=limit, offset=offset))


async def create_channel(request: web.Request) -> web.Response:
    body = await read_body(request, ChannelCreate)
    created = await ops(request).channels.create_channel(**msgspec.structs.asdict(body))
    response = answer(created, status=201)
    response.headers["Location"] = f"{PREFIX}/channels/{created.id}"
    return response


async def show_channel(request: web.Request) -> web.Response:
    return answer(await ops(request).channels.show_channel(channel_id(request)))


async def update_channel(request: web.Request) -> web.Response:
    changes = await read_body(request, ChannelChanges)
    return answer(await ops(request).channels.update_channel(channel_id(request), changes))


async def delete_channel(request: web.Request) -> web.Response:
    return answer(await ops(request).channels.delete_channel(channel_id(request)))


async def activate_channel(request: web.Request) -> web.Response:
    result = await ops(request).channels.activate_channel(channel_id(request))
    if result.active:
        return answer(result)
    checks = result.checks or []
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.passed]
    details = {"channel": msgspec.to_builtins(result), "checks": msgspec.to_builtins(checks)}
    return error(409, "activation_failed", failed, details=details)


async def deactivate_channel(request: web.Request) -> web.Response:
    return answer(await ops(request).channels.deactivate_channel(channel_id(request)))


async def rotate_webhook_secret(request: web.Request) -> web.Response:
    return answer(await ops(request).channels.rotate_webhook_secret(channel_id(request)))


ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "GET",
        f"{PREFIX}/channels",
        list_channels,
        "List channels",
        "channels",
        Page[ChannelView],
        params=PAGE,
    ),
    Endpoint(
        "POST",
        f"{PREFIX}/channels",
        create_channel,
        "Create a channel (CREATE, or CREATE & ACTIVATE with activate: true)",
        "channels",
        ChannelView,
        status=201,
        body=ChannelCreate,
        description="The answer holds the Chatbot webhook URL. With activate: true the four activation "
        "checks run and come back in `checks`; if one failed the channel is saved but inactive.",
    ),
    Endpoint(
        "GET",
        CHANNEL_PATH,
        show_channel,
        "One channel",
        "channels",
        ChannelView,
        params=(CHANNEL,),
        errors=(404,),
    ),
    Endpoint(
        "PATCH",
        CHANNEL_PATH,
        update_channel,
        "Change a channel",
        "channels",
        ChannelView,
        body=ChannelChanges,
        params=(CHANNEL,),
        errors=(404, 409),
        description="For an active channel, a new domain, e-mail, API key or agent must pass the "
        "activation checks: if one fails nothing changes (409 checks_failed, the checks in `details`).",
    ),
    Endpoint(
        "DELETE",
        CHANNEL_PATH,
        delete_channel,
        "Delete a channel (its webhook URL stops working)",
        "channels",
        ChannelDeleted,
        params=(CHANNEL,),
        errors=(404,),
    ),
    Endpoint(
        "POST",
        f"{CHANNEL_PATH}/activate",
        activate_channel,
        "Run the activation checks; active if all pass",
        "channels",
        ChannelView,
        params=(CHANNEL,),
        errors=(404, 409),
        description="409 activation_failed when a check failed: the channel is then inactive and "
        "`details` holds it and every check with its reason.",
    ),
    Endpoint(
        "POST",
        f"{CHANNEL_PATH}/deactivate",
        deactivate_channel,
        "Deactivate (the webhook accepts nothing)",
        "channels",
        ChannelView,
        params=(CHANNEL,),
        errors=(404,),
    ),
    Endpoint(
        "POST",
        f"{CHANNEL_PATH}/rotate-secret",
        rotate_webhook_secret,
        "New webhook secret: a new Chatbot webhook URL, the old one stops working",
        "channels",
        ChannelView,
        params=(CHANNEL,),
        errors=(404,),
    ),
]
