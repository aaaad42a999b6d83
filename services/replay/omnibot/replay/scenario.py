"""What a transcript runs against: its agent with the header's overrides, and the external URL.

The header names an agent file relative to the transcript and may override agent variables;
`{{external}}` inside the overrides stands for the fake external service's base URL, which only
the run knows. Outputs are compared with that URL written back as `{{external}}`, so one
transcript holds for every run wherever its fake service listens.

A customer line ending in Omnidesk's attachment block (`text\\n—————\\nВложенные файлы:\\nurl`, as
a webhook shows it) stands for files the customer attached: both runners play it as such (the
engine is handed the urls as the API message's files, the pipeline uploads the files to the
sandbox), because in confirm mode a block typed in the text is only text. The pipeline's files get
the sandbox's urls; outputs are compared with them written back as the transcript's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import msgspec

from omnibot.agents.agent import Agent, load_agent
from omnibot.agents.chat_text import message_text, parse_client_message
from omnibot.replay.transcript import (
    EXTERNAL_PLACEHOLDER,
    BotLine,
    FileLine,
    FileOut,
    Output,
    Transcript,
    TranscriptError,
)


def agent_path(transcript: Transcript, base_dir: Path) -> Path:
    return base_dir / transcript.header.agent


def agent_document(transcript: Transcript, base_dir: Path, external_url: str) -> dict[str, Any]:
    """The agent file as JSON, with the header's variable overrides applied."""
    path = agent_path(transcript, base_dir)
    try:
        raw = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        raise TranscriptError(f"agent file {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise TranscriptError(f"agent file {path}: not a JSON object")
    variables = raw.get("variables")
    merged = dict(variables) if isinstance(variables, dict) else {}
    merged.update(with_external(transcript.header.variables, external_url))
    return {**raw, "variables": merged}


def load_scenario_agent(transcript: Transcript, base_dir: Path, external_url: str) -> Agent:
    """The agent to run, validated like an import (`AgentInvalid` lists every error)."""
    agent, _warnings = load_agent(agent_document(transcript, base_dir, external_url))
    return agent


def with_external(value: Any, external_url: str) -> Any:
    """`value` with `{{external}}` in its strings replaced by the fake service's base URL."""
    if isinstance(value, str):
        return value.replace(EXTERNAL_PLACEHOLDER, external_url.rstrip("/"))
    if isinstance(value, list):
        return [with_external(item, external_url) for item in value]
    if isinstance(value, dict):
        return {key: with_external(item, external_url) for key, item in value.items()}
    return value


class Said(msgspec.Struct, frozen=True):
    """A customer line as Omnidesk holds it: the customer's words and the urls of their files."""

    words: str
    urls: list[str]

    @property
    def text(self) -> str:
        """The message as dialog rebuilds it from Omnidesk's API (`client_message`)."""
        return message_text({"content": self.words, "attachments": [{"url": url} for url in self.urls]})

    def files(self) -> list[tuple[str, bytes]]:
        """The files to attach: named as their urls end, with content derived from the url."""
        return [(PurePosixPath(urlsplit(url).path).name or "file", url.encode()) for url in self.urls]


def customer_said(line: str) -> Said:
    words, urls = parse_client_message(line)
    return Said(words, urls) if urls else Said(line, [])


def masked(text: str, external_url: str, urls: Mapping[str, str] | None = None) -> str:
    """A produced text with the fake service's base URL written back as `{{external}}`, and each
    url the run gave a file written back as the transcript's (`urls`: run's -> transcript's)."""
    urls = urls or {}
    for produced in sorted(urls, key=len, reverse=True):
        text = text.replace(produced, urls[produced])
    return text.replace(external_url.rstrip("/"), EXTERNAL_PLACEHOLDER)


def masked_output(output: Output, external_url: str, urls: Mapping[str, str] | None = None) -> Output:
    if isinstance(output, BotLine):
        return msgspec.structs.replace(output, bot=masked(output.bot, external_url, urls))
    if isinstance(output, FileLine):
        file = FileOut(
            name=masked(output.file.name, external_url, urls),
            caption=masked(output.file.caption, external_url, urls),
        )
        return msgspec.structs.replace(output, file=file)
    return output
