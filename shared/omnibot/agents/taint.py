"""Secret-derived values in a turn: usable where the agent sends them, never stored or shown.

`channel_webhook_token` (`email:api_key`) is there so an `external_request` can authenticate to
Omnidesk. An agent may copy it into a variable (`"set": {"t": "{{channel_webhook_token}}"}`) or a
text; without care it would then be stored with the chat, shown by `omnibot chat show` and the
admin API, sent to the customer, and quoted in the operator's note.

The taint is by value. Leaving the engine (the stored state, every effect but the external call),
each occurrence of a secret is replaced by a marker naming it, `⟪secret:channel_webhook_token:
3f9a…⟫`. Entering the next turn, markers in the stored variables become the value again, so
`{{t}}` in a later request's header or url still works. The marker carries a tag derived from the
secret itself: a customer who types a marker-shaped text cannot make the engine put the token in
its place, and the tag reveals nothing usable about the secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

SECRET_RUNTIME: Final = ("channel_webhook_token",)
# Shorter values are not concealed: they would match ordinary text (an empty API key, say).
_MIN_SECRET_CHARS: Final = 6

Secrets = dict[str, str]  # marker -> value; longest values first (a token contains its API key)


def secret_values(runtime: Mapping[str, Any]) -> Secrets:
    found: list[tuple[str, str]] = []
    for name in SECRET_RUNTIME:
        value = runtime.get(name)
        if not isinstance(value, str):
            continue
        found.append((name, value))
        if name == "channel_webhook_token":
            found.append(("channel_api_key", value.partition(":")[2]))
    secrets = {_marker(name, value): value for name, value in found if len(value) >= _MIN_SECRET_CHARS}
    return dict(sorted(secrets.items(), key=lambda item: len(item[1]), reverse=True))


def _marker(name: str, value: str) -> str:
    tag = hashlib.sha256(b"omnibot-taint\x00" + value.encode()).hexdigest()[:12]
    return f"⟪secret:{name}:{tag}⟫"


def conceal(value: Any, secrets: Secrets) -> Any:
    """`value` with every secret replaced by its marker (JSON values are rebuilt, not modified)."""
    if not secrets:
        return value
    return _walk(value, lambda text: _replace(text, ((v, m) for m, v in secrets.items())))


def reveal(value: Any, secrets: Secrets) -> Any:
    """`value` with every marker replaced by its secret again."""
    if not secrets:
        return value
    return _walk(value, lambda text: _replace(text, secrets.items()) if "⟪secret:" in text else text)


def _replace(text: str, pairs: Iterable[tuple[str, str]]) -> str:
    for old, new in pairs:
        if old in text:
            text = text.replace(old, new)
    return text


def _walk(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_walk(item, change) for item in value]
    if isinstance(value, dict):
        return {change(str(k)): _walk(v, change) for k, v in value.items()}
    return value
