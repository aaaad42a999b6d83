"""The pure parts of the `llm` slot: the chat-completions request body and reading the answer.

The wire format is OpenAI's chat completions (`POST {base_url}/chat/completions`), which most
providers and local servers speak. Building the body and reading the response are pure functions
here; the HTTP call (with the API key, through the network policy) is the dialog service's. A
refusal (the `refusal` field, or `finish_reason` "content_filter"), an empty answer, an error
status or a body that is not a chat completion is an `LLMFailure` with a short reason for the
transcript; the response text is never put in logs by this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

import msgspec

Role = Literal["system", "user", "assistant"]
MAX_REASON: Final = 200


class ChatMessage(msgspec.Struct, frozen=True):
    role: Role
    content: str


class LLMAnswer(msgspec.Struct, frozen=True):
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LLMFailure(msgspec.Struct, frozen=True):
    reason: str


class _Message(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None


class _Choice(msgspec.Struct):
    message: _Message = msgspec.field(default_factory=_Message)
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    usage: _Usage = msgspec.field(default_factory=_Usage)


def completions_url(base_url: str) -> str:
    """`{base_url}/chat/completions`, whether or not the base url ends with a slash."""
    return base_url.rstrip("/") + "/chat/completions"


def build_messages(system: str, history: Sequence[tuple[str, str]], prompt: str) -> list[ChatMessage]:
    """The conversation sent: the system text, past exchanges (("user"|"assistant", text)), the prompt."""
    messages = [ChatMessage("system", system)] if system.strip() else []
    for role, text in history:
        if text.strip():
            messages.append(ChatMessage("assistant" if role == "assistant" else "user", text))
    messages.append(ChatMessage("user", prompt))
    return messages


def build_body(model: str, messages: Sequence[ChatMessage], max_tokens: int) -> dict[str, Any]:
    """The JSON body of a chat-completions request."""
    return {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "max_tokens": max_tokens,
        "stream": False,
    }


def parse_response(status: int | None, body: Any, error: str | None = None) -> LLMAnswer | LLMFailure:
    """The answer in a chat-completions response, or why there is none."""
    if status is None:
        return LLMFailure(_bounded(error or "no response"))
    if not 200 <= status < 300:
        detail = ""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            detail = str(body["error"].get("message") or "")
        return LLMFailure(_bounded(f"HTTP {status}" + (f": {detail}" if detail else "")))
    try:
        completion = msgspec.convert(body, _Completion)
    except msgspec.ValidationError as exc:
        return LLMFailure(_bounded(f"not a chat completion: {exc}"))
    if not completion.choices:
        return LLMFailure("no choices in the response")
    choice = completion.choices[0]
    if choice.message.refusal or choice.finish_reason == "content_filter":
        return LLMFailure("the model refused")
    text = (choice.message.content or "").strip()
    if not text:
        return LLMFailure("empty answer")
    usage = completion.usage
    return LLMAnswer(text, usage.prompt_tokens, usage.completion_tokens)


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "…"
