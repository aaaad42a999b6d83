"""Parameters several endpoints of the admin API take, as the OpenAPI document declares them."""

from __future__ import annotations

from omnibot.admin.api.base import PREFIX
from omnibot.admin.api.openapi import Param
from omnibot.admin.schemas import DEFAULT_PAGE, MAX_PAGE
from omnibot.admin.validation import MAX_OFFSET
from omnibot.shared.ids import MAX_CASE_ID_DIGITS, MAX_CHANNEL_ID_DIGITS

INT = {"type": "integer"}
PAGE = (
    Param("limit", "query", {**INT, "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE}, "page size"),
    Param("offset", "query", {**INT, "minimum": 0, "maximum": MAX_OFFSET, "default": 0}, "items to skip"),
)
# Ids in paths are spelt one way only: ASCII digits, no sign, no leading zero (ids.py says why).
CHANNEL = Param(
    "channel_id", "path", {**INT, "minimum": 1, "maximum": 10**MAX_CHANNEL_ID_DIGITS - 1}, "channel id"
)
CHAT = Param(
    "chat_id",
    "path",
    {"type": "string", "pattern": f"^[1-9][0-9]{{0,{MAX_CASE_ID_DIGITS - 1}}}$"},
    "the Omnidesk case id",
)
CHANNEL_PATH = f"{PREFIX}/channels/{{channel_id}}"
CHAT_PATH = f"{CHANNEL_PATH}/chats/{{chat_id}}"
