"""The shapes of management: request bodies and answers, as msgspec Structs.

Operations build their answers from these, so the command line's `--json` and the admin API print
the same thing; the API decodes request bodies into them; the OpenAPI document is generated from
them, so it cannot drift from what the code does. Times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from omnibot.admin.validation import MAX_ID, MAX_LLM_KEY, MAX_LLM_MODEL, MAX_LLM_URL, MAX_TITLE

T = TypeVar("T")
MAX_PAGE = 500
DEFAULT_PAGE = 50


def documented(**schema: Any) -> msgspec.Meta:
    """Constraints for the OpenAPI document only: `validation` enforces them, with messages a
    person can act on, and names every wrong field at once (msgspec would stop at the first)."""
    return msgspec.Meta(extra_json_schema=schema)


# What `validation` accepts, as JSON Schema. Patterns are searched, not anchored: "\S" means
# "not only whitespace" (values are stripped before they are checked).
Title = Annotated[str, documented(minLength=1, maxLength=MAX_TITLE, pattern=r"\S")]
Domain = Annotated[
    str,
    documented(
        pattern=r"^\s*https?://[^/?#@\s]+/?\s*$",
        description="the account address, https://<account>.omnidesk.ru (http only with OMNIDESK_ALLOW_HTTP)",
    ),
]
ApiKey = Annotated[str, documented(minLength=1, pattern=r"\S")]
Email = Annotated[str, documented(pattern=r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$")]
AgentName = Annotated[str, documented(minLength=1, pattern=r"\S")]
Id = Annotated[int, documented(minimum=1, maximum=MAX_ID)]
TransferStatus = Annotated[str, documented(enum=["", "open", "waiting", "closed"])]
# The channel's own language model for `llm` slots; "" (each on its own) takes the environment's.
LLMBaseUrl = Annotated[
    str,
    documented(
        maxLength=MAX_LLM_URL,
        pattern=r"^\s*(https?://[^/?#@\s]+(/[^?#\s]*)?)?\s*$",
        description="the channel's own OpenAI-compatible chat-completions API, e.g. "
        "https://api.openai.com/v1 (no credentials, query or fragment); empty: LLM_BASE_URL",
    ),
]
LLMModel = Annotated[
    str,
    documented(
        maxLength=MAX_LLM_MODEL,
        pattern=r"^[^\u0000-\u001f\u007f-\u009f]*$",
        description="the model the channel's `llm` slots ask for; empty: LLM_MODEL",
    ),
]
LLMApiKey = Annotated[
    str,
    documented(
        maxLength=MAX_LLM_KEY,
        pattern=r"^\s*[^\s\u0000-\u001f\u007f-\u009f]*\s*$",
        writeOnly=True,
        description="the bearer key for llm_base_url; write-only (answers say only llm_api_key_set); "
        "empty: none of its own (with its own llm_base_url the channel sends no key; without, "
        "LLM_API_KEY)",
    ),
]

# --- answers ---------------------------------------------------------------------------------


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a list; `next_offset` is null on the last page."""

    items: list[T]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class Check(msgspec.Struct, kw_only=True, frozen=True):
    """One activation check: agent, omnidesk, webhook or unique."""

    name: str
    passed: bool
    detail: str


class ChannelView(msgspec.Struct, kw_only=True):
    id: int
    title: str
    domain: str
    email: str
    api_key: str  # masked: "k-3f…71"
    agent: str
    active: bool
    webhook_url: str  # the Chatbot webhook URL to paste into the Omnidesk rules
    bot_label_id: int | None
    bot_label_title: str
    transfer_status: str | None
    transfer_group_id: int | None
    # The channel's own language model; null: the environment's (LLM_BASE_URL, LLM_MODEL).
    llm_base_url: str | None
    llm_model: str | None
    llm_api_key_set: bool  # the key itself is write-only: never shown, not even masked
    created_at: str | None
    updated_at: str | None
    # Present when the activation checks ran (create --activate, activate, update of an active channel).
    checks: list[Check] | UnsetType = UNSET


class ChannelDeleted(msgspec.Struct, kw_only=True):
    id: int
    deleted: bool


class AgentView(msgspec.Struct, kw_only=True):
    name: str
    latest_version: int
    published_version: int | None


class AgentVersionView(msgspec.Struct, kw_only=True):
    name: str
    version: int
    published: bool
    imported_at: str | None
    slots: int


class AgentImported(msgspec.Struct, kw_only=True):
    name: str
    version: int
    published: bool
    warnings: list[str]


class AgentValid(msgspec.Struct, kw_only=True):
    name: str
    valid: bool
    warnings: list[str]


class AgentPublished(msgspec.Struct, kw_only=True):
    name: str
    published_version: int


class AgentDeleted(msgspec.Struct, kw_only=True):
    name: str
    deleted: bool
    versions: int


class TranscriptEntry(msgspec.Struct, kw_only=True):
    role: Literal["customer", "bot", "operator", "system"]
    text: str
    at: str | None


class ChatSummary(msgspec.Struct, kw_only=True):
    channel_id: int
    chat_id: str
    owner: Literal["bot", "operator"]
    agent: str
    agent_version: int
    slot: str | None  # the current slot; null: no session (the next message starts the agent)
    waiting: str  # "reply", "external" or "none"
    last_error: str
    created_at: str | None
    updated_at: str | None


class ChatView(ChatSummary, kw_only=True):
    variables: dict[str, Any]
    transcript: list[TranscriptEntry]  # oldest first; the last `transcript` lines asked for


class DeadLetterView(msgspec.Struct, kw_only=True):
    id: str
    stage: Literal["inbound", "outbound"]
    channel_id: int | None
    chat_id: str | None
    kind: str
    error: str
    attempts: int
    dead_at: str | None
    body: dict[str, Any]


class ReplayResult(msgspec.Struct, kw_only=True):
    replayed: list[DeadLetterView]
    missing: list[str]  # ids asked for that are not (or no longer) dead letters


class SecretsRotated(msgspec.Struct, kw_only=True):
    channels: int  # channels whose secrets are now encrypted under the first key of SECRET_KEY


class Health(msgspec.Struct, kw_only=True):
    status: str


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error of the admin API. `error` is a stable code; `problems` lists every reason."""

    error: str
    message: str
    problems: list[str]
    details: dict[str, Any] | UnsetType = UNSET


# --- requests --------------------------------------------------------------------------------


class ChannelCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    title: Title = "New channel"
    domain: Domain  # https://<account>.omnidesk.ru
    api_key: ApiKey
    email: Email  # the bot's staff member in Omnidesk
    agent: AgentName  # the default agent
    bot_label_id: Id | None = None  # the "on the bot" label, removed on transfer to an operator
    bot_label_title: str = ""  # or its title; both empty: the label titled "На боте", found on activation
    transfer_status: TransferStatus = ""  # "", "open", "waiting" or "closed": case status set on transfer
    transfer_group_id: Id | None = None  # group the case goes to on transfer
    llm_base_url: LLMBaseUrl = ""  # the channel's own language model; "": LLM_BASE_URL
    llm_model: LLMModel = ""  # "": LLM_MODEL
    llm_api_key: LLMApiKey = ""  # write-only
    activate: bool = False  # CREATE & ACTIVATE


class ChannelChanges(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields given change; null clears an optional one, "" a channel's own language
    model setting (llm_base_url, llm_model, llm_api_key: back to the environment's)."""

    title: Title | UnsetType = UNSET
    domain: Domain | UnsetType = UNSET
    api_key: ApiKey | UnsetType = UNSET
    email: Email | UnsetType = UNSET
    agent: AgentName | UnsetType = UNSET
    bot_label_id: Id | UnsetType | None = UNSET
    bot_label_title: str | UnsetType = UNSET
    transfer_status: TransferStatus | UnsetType = UNSET
    transfer_group_id: Id | UnsetType | None = UNSET
    llm_base_url: LLMBaseUrl | UnsetType = UNSET
    llm_model: LLMModel | UnsetType = UNSET
    llm_api_key: LLMApiKey | UnsetType = UNSET


class AgentPublish(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    version: Id | None = None  # default: the latest version


class DeadLetterReplay(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    ids: list[str] = []
    all: bool = False
    stage: Literal["inbound", "outbound"] | None = None
