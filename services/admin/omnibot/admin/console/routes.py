"""The console's route table and how it is mounted on the admin service's application."""

from __future__ import annotations

from aiohttp import web

from omnibot.admin.console import auth
from omnibot.admin.console.context import CONSOLE, Console
from omnibot.admin.console.render import STATIC
from omnibot.admin.console.views import agents, audit, channels, chats, dead_letters, overview

_CHANNEL = r"/channels/{channel_id:\d{1,12}}"
_CHAT = _CHANNEL + "/chats/{chat_id}"
_VERSION = "/agents/{name}/versions/{version:\\d{1,9}}"

ROUTES = [
    web.get("/", overview.overview),
    web.get("/sign-in", auth.sign_in_page),
    web.post("/sign-in", auth.sign_in),
    web.post("/sign-out", auth.sign_out),
    web.get("/lang", auth.switch_language),
    web.get("/channels", channels.list_channels),
    web.get("/channels/new", channels.choose_type),
    web.get("/channels/new/omnidesk", channels.new_omnidesk),
    web.post("/channels/new/omnidesk", channels.create_omnidesk),
    web.get(_CHANNEL, channels.show_channel),
    web.post(_CHANNEL + "/edit", channels.edit_channel),
    web.post(_CHANNEL + "/activate", channels.activate_channel),
    web.post(_CHANNEL + "/deactivate", channels.deactivate_channel),
    web.post(_CHANNEL + "/rotate-secret", channels.rotate_secret),
    web.get(_CHANNEL + "/delete", channels.confirm_delete),
    web.post(_CHANNEL + "/delete", channels.delete_channel),
    web.get("/agents", agents.list_agents),
    web.post("/agents/import", agents.import_agent),
    web.get("/agents/{name}", agents.show_agent),
    web.get(_VERSION, agents.show_version),
    web.get(_VERSION + "/diagram.svg", agents.diagram),
    web.get(_VERSION + "/export", agents.export_version),
    web.post(_VERSION + "/publish", agents.publish_version),
    web.get("/chats", chats.list_chats),
    web.get(_CHAT, chats.show_chat),
    web.post(_CHAT + "/transfer", chats.transfer_chat),
    web.post(_CHAT + "/return", chats.return_chat),
    web.get("/dead-letters", dead_letters.list_dead_letters),
    web.post("/dead-letters/replay", dead_letters.replay),
    web.get("/audit", audit.audit_log),
]


def mount_console(app: web.Application, console: Console) -> None:
    """Add the console's pages to the admin application (before it starts)."""
    app[CONSOLE] = console
    app.middlewares.append(auth.console_middleware)
    app.add_routes(ROUTES)
    app.router.add_static("/static/", STATIC, append_version=False)
