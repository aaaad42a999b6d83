"""The console's forms: reading what was typed, and putting each refusal next to its field.

Validation itself is the management operations' (the API's rules, one copy): a refused operation
names its problems as `field: message`, and `by_field` sorts them onto the form's fields; what
names no field of the form is shown above it. Nothing is saved when an operation refuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Operation field names → the form field that shows the problem.
CHANNEL_FIELDS = {
    "title": "title",
    "domain": "domain",
    "api_key": "api_key",
    "email": "email",
    "agent": "agent",
    "bot_label_id": "bot_label",
    "bot_label": "bot_label",
    "bot_label_title": "bot_label",
    "llm_base_url": "llm_base_url",
    "llm_model": "llm_model",
    "llm_api_key": "llm_api_key",
}


@dataclass
class FormProblems:
    fields: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def add(self, name: str | None, message: str) -> None:
        if name is None:
            self.general.append(message)
        else:
            self.fields.setdefault(name, []).append(message)


def by_field(problems: Iterable[str], names: Mapping[str, str]) -> FormProblems:
    sorted_out = FormProblems()
    for problem in problems:
        head, sep, rest = problem.partition(":")
        key = head.strip()
        if sep and key in names:
            sorted_out.add(names[key], rest.strip())
        else:
            sorted_out.add(None, problem)
    return sorted_out


def text(form: Mapping[str, Any], name: str, limit: int = 2000) -> str:
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


@dataclass
class ChannelForm:
    title: str = "New channel"
    domain: str = ""
    api_key: str = ""
    email: str = ""
    agent: str = ""
    bot_label: str = ""
    # The channel's own language model (the edit page's optional section); the key, like the
    # Omnidesk key, is never put into a page: empty keeps the stored one, the box removes it.
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_api_key_clear: bool = False

    @classmethod
    def read(cls, form: Mapping[str, Any]) -> ChannelForm:
        return cls(
            title=text(form, "title", 300),
            domain=text(form, "domain", 500),
            api_key=text(form, "api_key", 500),
            email=text(form, "email", 320),
            agent=text(form, "agent", 200),
            bot_label=text(form, "bot_label", 200).strip(),
            # One past the operations' limits, so that an over-long value is refused, not cut.
            llm_base_url=text(form, "llm_base_url", 2001),
            llm_model=text(form, "llm_model", 201),
            llm_api_key=text(form, "llm_api_key", 4097),
            llm_api_key_clear=bool(text(form, "llm_api_key_clear")),
        )

    def bot_label_fields(self) -> tuple[int | None, str, str | None]:
        """(label id, label title, problem): digits are an id, other text a title, empty neither."""
        if not self.bot_label:
            return None, "", None
        if self.bot_label.isdigit():
            value = int(self.bot_label)
            return (value, "", None) if value > 0 else (None, "", "must be a positive id")
        return None, self.bot_label, None
