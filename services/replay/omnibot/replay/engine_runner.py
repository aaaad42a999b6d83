"""Running a transcript through the pure dialog engine: milliseconds, deterministic, no I/O.

`run_in_engine` plays each customer line through `engine.step` and does around it what the dialog
service does: it answers every `CallExternal` from the header's `external` list and feeds the
result back until the turn waits, and once a turn transferred the chat (a transfer effect, or the
seed's request that removes the bot label from the case), the chat is with an operator and the bot
answers nothing more. Time is virtual: a request's `delay_s` and the fake
answer's `delay_s` advance a clock instead of being slept, and a fake answer slower than the
request's `timeout_s` is a timeout, so slow requests behave as in the pipeline, in order. A
customer line's attachment block is files the customer attached (`scenario.customer_said`), as the
pipeline run uploads them.

The runtime variables are realistic but fixed: chat ids are numbered 2000, 2001, ... in the order
chats first appear (as a fresh sandbox numbers its cases), the Omnidesk domain is
`https://test.omnidesk.ru`, `channel_webhook_token` is `bot@x.ru:key`, the visitor comes from
the header.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from omnibot.agents import engine
from omnibot.agents.agent import Agent
from omnibot.agents.handoff import MAX_EXTERNAL_CALLS_PER_TURN, label_id, removed_bot_label
from omnibot.agents.llm import LLMFailure, completions_url, parse_response
from omnibot.replay.external import ExternalScript
from omnibot.replay.scenario import customer_said, load_scenario_agent, masked_output
from omnibot.replay.transcript import (
    BotLine,
    CustomerLine,
    Event,
    FileLine,
    FileOut,
    Header,
    Output,
    Transcript,
    TransferLine,
    TransferOut,
)

START: Final = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
FIRST_CHAT_ID: Final = 2000
EXTERNAL_URL: Final = "http://external.invalid"  # never resolved: nothing leaves the process
OMNIDESK_DOMAIN: Final = "https://test.omnidesk.ru"
CHANNEL_ID: Final = 1
CHANNEL_TOKEN: Final = "bot@x.ru:key"  # noqa: S105 -- a fake: nothing leaves the process
# `llm` slots ask the fake external service too: `LLM_BASE_URL` is its url plus this path, so a
# header's `external` entry for POST /llm/chat/completions answers them.
LLM_PATH: Final = "/llm"


def run_in_engine(
    transcript: Transcript,
    base_dir: Path,
    *,
    external_url: str = EXTERNAL_URL,
    max_slots_per_turn: int = 50,
) -> Transcript:
    """Play the transcript's customer lines through the engine; the transcript it produced."""
    agent = load_scenario_agent(transcript, base_dir, external_url)
    run = _EngineRun(agent, transcript.header, max_slots_per_turn)
    events: list[Event] = []
    for event in transcript.events:
        if isinstance(event, CustomerLine):
            events.append(event)
            events.extend(masked_output(o, external_url) for o in run.play(event))
    return Transcript(header=transcript.header, events=events)


@dataclass
class _Chat:
    label: str
    chat_id: str
    state: engine.ChatState | None = None
    with_operator: bool = False


class _EngineRun:
    def __init__(self, agent: Agent, header: Header, max_slots_per_turn: int) -> None:
        self._agent = agent
        self._header = header
        self._max_slots = max_slots_per_turn
        self._script = ExternalScript(header.external)
        self._chats: dict[str, _Chat] = {}
        self._clock = 0.0  # virtual seconds since START

    def play(self, line: CustomerLine) -> list[Output]:
        """The outputs of one customer line (none while an operator has the chat)."""
        if line.at is not None:
            self._clock = max(self._clock, line.at)
        chat = self._chat(line.chat)
        if chat.with_operator:
            return []
        ctx = engine.TurnContext(runtime=self._runtime(chat), max_slots_per_turn=self._max_slots)
        said = customer_said(line.customer)
        # As dialog in confirm mode hands it over: the files are the message's, not the text's.
        pending: engine.Event = engine.CustomerMessage(text=said.text, attachments=said.urls)
        outputs: list[Output] = []
        for _ in range(MAX_EXTERNAL_CALLS_PER_TURN + 1):
            now = START + timedelta(seconds=self._clock)
            chat.state, effects = engine.step(self._agent, chat.state, pending, now, ctx)
            outputs.extend(self._outputs(chat, effects))
            call = next((e for e in effects if isinstance(e, engine.CallExternal | engine.CallLLM)), None)
            if call is None:
                break
            if isinstance(call, engine.CallLLM):
                pending = self._answer_llm(call)
                continue
            pending = self._answer(call)
            if removes_bot_label(call, pending, chat.chat_id, chat.state.variables.get("bot_label_id")):
                chat.with_operator = True  # the seed's transfer: the agent took the bot label off
        # Past the bound the service gives the turn up (dead letter) and says nothing more.
        return outputs

    def _chat(self, label: str) -> _Chat:
        if label not in self._chats:
            self._chats[label] = _Chat(label, str(FIRST_CHAT_ID + len(self._chats)))
        return self._chats[label]

    def _runtime(self, chat: _Chat) -> dict[str, Any]:
        visitor = self._header.visitor
        return {
            "chat_id": chat.chat_id,
            "channel_id": CHANNEL_ID,
            "agent_name": self._agent.name,
            "channel_webhook_url": OMNIDESK_DOMAIN,
            "channel_webhook_token": CHANNEL_TOKEN,
            "channel_visitor_id": "",
            "channel_visitor_email": visitor.email,
            "channel_visitor_name": visitor.name,
            "channel_visitor_phone": visitor.phone,
            "channel_visitor_login": "",
        }

    def _outputs(self, chat: _Chat, effects: list[engine.Effect]) -> list[Output]:
        outputs: list[Output] = []
        at = round(self._clock, 3)
        for effect in effects:
            match effect:
                case engine.Reply(text=text) if text.strip():  # the service drops empty replies too
                    outputs.append(BotLine(bot=text, chat=chat.label, at=at))
                case engine.SendFile(name=name, caption=caption):
                    outputs.append(FileLine(file=FileOut(name=name, caption=caption), chat=chat.label, at=at))
                case engine.Transfer(reason=reason):
                    outputs.append(TransferLine(transfer=TransferOut(reason=reason), chat=chat.label, at=at))
                    chat.with_operator = True
                case _:
                    pass
        return outputs

    def _answer_llm(self, call: engine.CallLLM) -> engine.LLMResult:
        """The fake language model's answer (an `external` entry for POST /llm/chat/completions)."""
        response = self._script.take("POST", completions_url(LLM_PATH))
        if response is None:
            return engine.LLMResult(request_id=call.request_id, text=None, error="no fake response")
        if response.delay_s > call.timeout_s:
            self._clock += call.timeout_s
            return engine.LLMResult(request_id=call.request_id, text=None, error="timeout")
        self._clock += response.delay_s
        answer = parse_response(response.status, response.body)
        if isinstance(answer, LLMFailure):
            return engine.LLMResult(request_id=call.request_id, text=None, error=answer.reason)
        return engine.LLMResult(
            request_id=call.request_id,
            text=answer.text,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
        )

    def _answer(self, call: engine.CallExternal) -> engine.ExternalResult:
        """The fake service's answer to a request, with its delays spent on the virtual clock."""
        self._clock += call.delay_s
        response = self._script.take(call.method, call.url)
        if response is None:
            return engine.ExternalResult(request_id=call.request_id, status=None, error="no fake response")
        if response.delay_s > call.timeout_s:
            self._clock += call.timeout_s
            return engine.ExternalResult(
                request_id=call.request_id, status=None, error=f"timeout after {call.timeout_s:g} s"
            )
        self._clock += response.delay_s
        return engine.ExternalResult(request_id=call.request_id, status=response.status, body=response.body)


def removes_bot_label(
    call: engine.CallExternal, result: engine.ExternalResult, chat_id: str, bot_label: object
) -> bool:
    """Whether a successful request took the bot label off this chat's case, the seed's way; the
    dialog service then hands the chat to an operator (omnibot.agents.handoff decides for both)."""
    return removed_bot_label(call, result, OMNIDESK_DOMAIN, chat_id, label_id(bot_label)) is not None
