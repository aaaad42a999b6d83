"""The dialog engine: the pure, deterministic core that runs an agent for one chat.

`step(agent, state, event, now, ctx) -> (state, effects)` is the whole interface: it takes the
chat's persisted state and one event (a customer message or the result of an external request)
and returns the new state and what must happen in the world (replies, files, HTTP calls, transfer).
No I/O, no clock, no randomness: `now` and the runtime variables come in as parameters, request
ids are counted in the state, so the same inputs always give the same outputs and a recorded
conversation can be replayed exactly. The input state is never modified.

The text helpers of the Omnidesk channel it uses (the attachment block, numbered menus) are in
`omnibot.agents.chat_text`.

An agent must never hang a chat: a turn that runs more than `max_slots_per_turn` slots without
waiting, that reaches a slot that does not exist, or that fails in any slot, has none of its
effects emitted; instead the customer gets the apology and the chat is transferred to an operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import msgspec

from omnibot.agents import limits, taint
from omnibot.agents.agent import (
    RUNTIME_PINNED,
    Agent,
    AttachmentSlot,
    ButtonMenuSlot,
    ConditionSlot,
    EndSlot,
    ExternalRequestSlot,
    InputSlot,
    IntentSlot,
    JumpSlot,
    LLMSlot,
    MemorySlot,
    Slot,
    TextSlot,
    TransferSlot,
)
from omnibot.agents.chat_text import looks_like_menu_line, match_button, parse_client_message, without_block
from omnibot.agents.conditions import evaluate
from omnibot.agents.patterns import search
from omnibot.agents.templates import MISSING, render, render_value, resolve_path

# -- events -----------------------------------------------------------------------------------------


class CustomerMessage(msgspec.Struct, frozen=True, kw_only=True, tag="customer_message"):
    text: str  # the raw webhook text: may contain "\n—————\nВложенные файлы:\n<url>\n<url>"
    # The message's files as Omnidesk's API lists them (INBOUND_MODE=confirm). None: taken from
    # the block in `text`, which the customer can type themselves (webhook mode).
    attachments: list[str] | None = None


class ExternalResult(msgspec.Struct, frozen=True, kw_only=True, tag="external_result"):
    request_id: str
    status: int | None  # None: network error / timeout / refused
    body: Any = None  # decoded JSON, or None
    error: str | None = None


class SessionTimeout(msgspec.Struct, frozen=True, kw_only=True, tag="session_timeout"):
    """The chat's timer: `activity` is the `last_activity` it was set for (a later one makes it stale)."""

    activity: float


class LLMResult(msgspec.Struct, frozen=True, kw_only=True, tag="llm_result"):
    request_id: str
    text: str | None  # None: failed (refusal, timeout, 4xx/5xx, not a chat completion)
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_ms: float = 0.0


Event = CustomerMessage | ExternalResult | SessionTimeout | LLMResult


class TurnContext(msgspec.Struct, frozen=True, kw_only=True):
    # chat_id, channel_id, agent_name, channel_webhook_url, channel_webhook_token,
    # channel_visitor_id/email/name/phone/login: NEVER persisted (the token is a secret).
    runtime: Mapping[str, Any]
    max_slots_per_turn: int = 50
    apology_text: str = "Извините, что-то пошло не так. Перевожу вас на оператора."
    explain: bool = False  # add `Explain` effects (menu and intent scores), for `omnibot agent try`


class ChatState(msgspec.Struct, kw_only=True):
    """What the engine remembers about a chat between turns (persisted in MongoDB)."""

    slot: str | None = None  # current slot; None: no session (next message starts at agent.start)
    waiting: Literal["none", "reply", "external"] = "none"
    # Agent variables (from agent.variables at session start) and collected ones, including the
    # last client_message / client_attachments; runtime variables are NOT stored here.
    variables: dict[str, Any] = {}
    pending_request_id: str | None = None
    request_counter: int = 0
    sessions: int = 0  # sessions started so far
    last_activity: float = 0.0  # unix time of the customer's last message (0: none yet)
    timeout_handled: float = 0.0  # the `last_activity` whose `on_timeout` already ran
    # Past exchanges for `llm` slots with `history`: ("user" | "assistant", text), oldest first.
    history: list[tuple[str, str]] = []
    turn_said: list[tuple[str, str]] = []  # this turn's, until it ends (it may wait on a call)
    llm_calls: int = 0
    llm_tokens: int = 0
    llm_ms: float = 0.0


# -- effects ----------------------------------------------------------------------------------------
# Tagged so that a list of effects can be stored (an outbox) and decoded back as `Effect`.


class Reply(msgspec.Struct, frozen=True, tag="reply"):
    text: str


class SendFile(msgspec.Struct, frozen=True, tag="send_file"):
    url: str
    name: str
    caption: str


class CallExternal(msgspec.Struct, frozen=True, tag="call_external"):
    # May carry secrets (headers, basic_auth rendered from channel_webhook_token): never log it.
    request_id: str
    method: str
    url: str
    headers: dict[str, str]
    body: Any | None
    basic_auth: str | None
    timeout_s: float
    delay_s: float


class Transfer(msgspec.Struct, frozen=True, tag="transfer"):
    reason: Literal["slot", "error", "loop"]
    detail: str = ""


class SessionEnded(msgspec.Struct, frozen=True, tag="session_ended"):
    pass


class CallLLM(msgspec.Struct, frozen=True, tag="call_llm"):
    # The provider, its key and model are the service's (settings, channel): not in here.
    request_id: str
    system: str
    history: list[tuple[str, str]]
    prompt: str
    max_tokens: int
    timeout_s: float


class Explain(msgspec.Struct, frozen=True, tag="explain"):
    """How free text was understood (only with `TurnContext.explain`); reaches no customer."""

    slot: str
    kind: Literal["menu", "intent"]
    chosen: str | None
    score: float
    ambiguous: bool
    scores: list[tuple[str, float]]


Effect = Reply | SendFile | CallExternal | Transfer | SessionEnded | CallLLM | Explain


# -- step -------------------------------------------------------------------------------------------


def step(
    agent: Agent, state: ChatState | None, event: Event, now: datetime, ctx: TurnContext
) -> tuple[ChatState, list[Effect]]:
    """Run one turn of `agent` for a chat: the new state and the effects, in order.

    Secret-derived values are concealed in all it returns but the external calls
    (`omnibot.agents.taint`); a turn over a size bound (`omnibot.agents.limits`) gives up."""
    secrets = taint.secret_values(ctx.runtime)
    if state is not None and secrets:
        state = msgspec.structs.replace(state, variables=taint.reveal(state.variables, secrets))
    new_state, effects = _step(agent, state, event, now, ctx)
    if (problem := limits.state_problem(new_state.variables)) is not None:
        new_state.variables = dict(state.variables) if state is not None else {}
        new_state, effects = _give_up(new_state, ctx, "error", problem)
    if secrets:
        new_state.variables = taint.conceal(new_state.variables, secrets)
        effects = [e if isinstance(e, CallExternal) else _conceal_effect(e, secrets) for e in effects]
    return new_state, effects


def _conceal_effect(effect: Effect, secrets: taint.Secrets) -> Effect:
    fields = {f: taint.conceal(getattr(effect, f), secrets) for f in effect.__struct_fields__}
    return msgspec.structs.replace(effect, **fields)


def _step(
    agent: Agent, state: ChatState | None, event: Event, now: datetime, ctx: TurnContext
) -> tuple[ChatState, list[Effect]]:
    st = ChatState() if state is None else msgspec.structs.replace(state, variables=dict(state.variables))
    if isinstance(event, ExternalResult | LLMResult):
        if st.waiting != "external" or event.request_id != st.pending_request_id:
            return st, []  # a stale or duplicate result: the request it answers is gone
    elif isinstance(event, SessionTimeout):
        if timeout_due(agent, st) is None or now.timestamp() < st.last_activity + agent.session_timeout_s:
            return st, []  # the customer wrote since, it already ran, or it is not time yet
    elif st.waiting == "external" and st.slot is not None:
        # The service holds customer messages while a request is in flight; if one arrives
        # anyway it answers nothing and must not disturb the pending request.
        return st, []

    turn = _Turn(agent, st, ctx, now)
    try:
        turn.handle(event)
    except _AbortTurnError as abort:
        return _give_up(st, ctx, abort.reason, abort.detail)
    except limits.OutputTooLarge as exc:
        # The chat keeps the variables it had: what overflowed must not be saved either.
        st.variables = dict(state.variables) if state is not None else {}
        return _give_up(st, ctx, "error", f"slot {turn.current!r}: {exc}")
    except Exception as exc:  # noqa: BLE001 -- whatever failed, the chat must reach a human
        return _give_up(st, ctx, "error", f"slot {turn.current!r}: {type(exc).__name__}: {exc}")
    kept = agent.compiled.history_kept
    if kept:
        _remember_exchange(st, turn, kept)
    return st, turn.effects


def timeout_due(agent: Agent, state: ChatState) -> float | None:
    """When the agent's `on_timeout` is due for this chat (unix time), or None if it is not armed:
    no `on_timeout`, timeouts off, not waiting for the customer, or already run for this silence."""
    if agent.on_timeout is None or agent.session_timeout_s <= 0:
        return None
    if state.waiting != "reply" or state.slot is None or state.last_activity <= 0:
        return None
    if state.timeout_handled == state.last_activity:
        return None
    return state.last_activity + agent.session_timeout_s


def _remember_exchange(st: ChatState, turn: _Turn, kept: int) -> None:
    said = [("user", turn.customer_text)] if turn.customer_text else []
    said.extend(("assistant", e.text) for e in turn.effects if isinstance(e, Reply))
    if st.waiting == "external":
        # Mid-turn: a call made now (or made again after a crash) sees the same past.
        st.turn_said = [*st.turn_said, *said]
    elif said or st.turn_said:
        st.history = [*st.history, *st.turn_said, *said][-kept:]
        st.turn_said = []


def _give_up(
    st: ChatState, ctx: TurnContext, reason: Literal["error", "loop"], detail: str
) -> tuple[ChatState, list[Effect]]:
    st.slot, st.waiting, st.pending_request_id = None, "none", None
    effects: list[Effect] = [Reply(ctx.apology_text)] if ctx.apology_text.strip() else []
    effects.append(Transfer(reason, detail))
    return st, effects


class _AbortTurnError(Exception):
    def __init__(self, reason: Literal["error", "loop"], detail: str) -> None:
        super().__init__(detail)
        self.reason: Literal["error", "loop"] = reason
        self.detail = detail


class _Turn:
    """One turn in progress: the working state, the template variables and the effects so far."""

    def __init__(self, agent: Agent, st: ChatState, ctx: TurnContext, now: datetime) -> None:
        self.agent, self.st, self.ctx, self.now = agent, st, ctx, now
        self.effects: list[Effect] = []
        self.executed = 0
        self.current: str | None = st.slot
        self.env: dict[str, Any] = {}
        self.customer_text = ""  # this turn's customer message without its attachment block

    # The variables templates see: runtime, then the chat's variables, then the per-turn values
    # that nothing may shadow. Built once per turn and kept in step with `st.variables`.
    def _build_env(self) -> None:
        runtime, variables = self.ctx.runtime, self.st.variables
        env = {**runtime, **variables}
        env["client_message"] = variables.get("client_message", "")
        env["client_attachments"] = variables.get("client_attachments", [])
        env["date"] = self.now.date().isoformat()
        env["chat_id"] = runtime.get("chat_id", "")
        env["channel_id"] = runtime.get("channel_id", "")
        env["agent_name"] = runtime.get("agent_name", self.agent.name)
        env["within_working_hours"] = self.agent.compiled.within_working_hours(self.now)
        self.env = env

    def set_var(self, name: str, value: Any) -> None:
        limits.check_variable(name, value)
        self.st.variables[name] = value
        if name not in RUNTIME_PINNED:
            self.env[name] = value

    def unset_var(self, name: str) -> None:
        self.st.variables.pop(name, None)
        if name not in RUNTIME_PINNED:
            if name in self.ctx.runtime:
                self.env[name] = self.ctx.runtime[name]
            else:
                self.env.pop(name, None)

    def say(self, template: str | None) -> None:
        # An empty text (e.g. a template whose variables are unset) is not sent: Omnidesk
        # refuses empty messages, and an empty bubble helps nobody.
        if template:
            text = render(template, self.env)
            if text.strip():
                limits.check_message(text)
                self.effects.append(Reply(text))

    # -- events

    def handle(self, event: Event) -> None:
        match event:
            case CustomerMessage():
                self.on_message(event.text, event.attachments)
            case ExternalResult():
                self.on_result(event)
            case LLMResult():
                self.on_llm(event)
            case SessionTimeout():
                self.on_timeout()

    def on_message(self, raw: str, known_attachments: list[str] | None = None) -> None:
        st = self.st
        if known_attachments is None:
            text, attachments = parse_client_message(raw)
        else:
            text, attachments = without_block(raw, known_attachments), list(known_attachments)
        self.customer_text = text
        at = self.now.timestamp()
        new_session = st.slot is None or st.waiting == "none" or self.silent_too_long(at)
        st.last_activity = at
        if new_session:
            st.variables = dict(self.agent.variables)
            st.sessions += 1
            st.slot, st.waiting, st.pending_request_id = None, "none", None
        st.variables["client_message"] = raw
        st.variables["client_attachments"] = attachments
        self._build_env()
        if new_session:
            # The message that opens a session answers nothing: run from the start.
            self.run(self.agent.start)
            return
        slot = self.enter(st.slot)
        match slot:
            case ButtonMenuSlot():
                titles = self.agent.compiled.titles(slot, self.env)
                chosen, score = match_button(text, titles), 1.0
                if chosen is None and not looks_like_menu_line(text):
                    # Free text; a menu line whose number and title disagree stays a wrong answer.
                    chosen, score = self.match_free_text(slot, titles, text)
                elif chosen is None:
                    score = 0.0
                self.set_var("menu_score", score)
                if chosen is not None:
                    self.set_var("menu_choice", titles[chosen])
                    self.run(slot.buttons[chosen].next)
                else:
                    self.unset_var("menu_choice")
                    self.run(slot.fallback if slot.fallback is not None else slot.id)
            case InputSlot():
                if slot.pattern is not None and not search(slot.pattern, text):
                    self.say(slot.retry_text or slot.text)  # keep waiting in this slot
                    return
                self.set_var(slot.variable, text)
                self.run(slot.next)
            case _:
                raise _AbortTurnError("error", f"slot {slot.id!r} ({_kind(slot)}) does not wait for a reply")

    def silent_too_long(self, at: float) -> bool:
        """The customer writes after `session_timeout_s` of silence in a waiting slot."""
        timeout, st = self.agent.session_timeout_s, self.st
        return timeout > 0 and st.waiting == "reply" and 0 < st.last_activity <= at - timeout

    def on_timeout(self) -> None:
        # `step` checked that it is due: run the agent's `on_timeout` slot, once per silence.
        st = self.st
        st.timeout_handled = st.last_activity
        self._build_env()
        assert self.agent.on_timeout is not None
        self.run(self.agent.on_timeout)

    def match_free_text(self, slot: ButtonMenuSlot, titles: list[str], text: str) -> tuple[int | None, float]:
        explain = self.ctx.explain
        found = self.agent.compiled.menu(slot, titles).match(
            text, self.agent.match_threshold, complete=explain
        )
        if self.ctx.explain:
            chosen = None if found.winner is None else titles[found.winner]
            scores = [(titles[s.key], s.score) for s in found.scores]
            self.effects.append(Explain(slot.id, "menu", chosen, found.score, found.ambiguous, scores))
        return found.winner, found.score

    def classify(self, slot: IntentSlot) -> str:
        text = parse_client_message(str(self.st.variables.get("client_message", "")))[0]
        threshold = slot.threshold if slot.threshold is not None else self.agent.match_threshold
        found = self.agent.compiled.intents[slot.id].classify(text, threshold, complete=self.ctx.explain)
        if self.ctx.explain:
            scores = [(s.name, s.score) for s in found.scores]
            explained = Explain(slot.id, "intent", found.intent, found.confidence, found.ambiguous, scores)
            self.effects.append(explained)
        self.set_var("intent_confidence", found.confidence)
        if found.intent is None:
            self.unset_var("intent")
            return slot.fallback
        self.set_var("intent", found.intent)
        return next(i.next for i in slot.intents if i.name == found.intent)

    def on_llm(self, result: LLMResult) -> None:
        st = self.st
        self._build_env()
        slot = self.enter(st.slot)
        if not isinstance(slot, LLMSlot):
            raise _AbortTurnError("error", f"slot {slot.id!r} ({_kind(slot)}) asked no language model")
        st.waiting, st.pending_request_id = "none", None
        st.llm_calls += 1
        st.llm_tokens += result.prompt_tokens + result.completion_tokens
        st.llm_ms += result.elapsed_ms
        self.llm_answered(slot, result.text)

    def llm_answered(self, slot: LLMSlot, text: str | None) -> None:
        if text is None:
            self.run(slot.on_error if slot.on_error is not None else slot.next)
            return
        if slot.save is not None:
            self.set_var(slot.save, text)
        if slot.send and text.strip():
            # The model's words as they are: never rendered as a template (it could name a secret).
            self.effects.append(Reply(text))
        self.run(slot.next)

    def on_result(self, result: ExternalResult) -> None:
        st = self.st
        self._build_env()
        slot = self.enter(st.slot)
        if isinstance(slot, LLMSlot):  # an interrupted model call: it failed
            st.waiting, st.pending_request_id = "none", None
            self.llm_answered(slot, None)
            return
        if not isinstance(slot, ExternalRequestSlot):
            raise _AbortTurnError("error", f"slot {slot.id!r} ({_kind(slot)}) made no external request")
        st.waiting, st.pending_request_id = "none", None
        self.set_var("er_status", result.status or 0)
        for name, path in slot.save.items():
            value = resolve_path(result.body, path)
            if value is MISSING:
                self.unset_var(name)  # no stale value from an earlier request survives
            else:
                self.set_var(name, value)
        ok = result.status is not None and 200 <= result.status < 300
        self.run(slot.next if ok or slot.on_error is None else slot.on_error)

    # -- slots

    def enter(self, slot_id: str | None) -> Slot:
        """Count one executed slot and return it; abort on a loop or a slot that does not exist."""
        self.executed += 1
        if self.executed > self.ctx.max_slots_per_turn:
            raise _AbortTurnError(
                "loop",
                f"more than {self.ctx.max_slots_per_turn} slots without waiting (at {slot_id!r})",
            )
        self.current = slot_id
        slot = self.agent.slot(slot_id) if slot_id is not None else None
        if slot is None:
            raise _AbortTurnError("error", f"slot {slot_id!r} does not exist")
        return slot

    def run(self, slot_id: str) -> None:
        """Execute slots from `slot_id` until one waits or the session ends."""
        next_id: str | None = slot_id
        while next_id is not None:
            next_id = self.execute(self.enter(next_id))

    def execute(self, slot: Slot) -> str | None:
        """Execute one slot; the id of the next one, or None when the turn stops here."""
        st = self.st
        match slot:
            case TextSlot():
                self.say(slot.text)
                return slot.next
            case ButtonMenuSlot():
                text = self.agent.compiled.menu_text(slot, self.env)
                limits.check_message(text)
                if text:
                    self.effects.append(Reply(text))
                st.slot, st.waiting = slot.id, "reply"
                return None
            case InputSlot():
                self.say(slot.text)
                st.slot, st.waiting = slot.id, "reply"
                return None
            case MemorySlot():
                for name, value in slot.set.items():
                    self.set_var(name, render_value(value, self.env))
                return slot.next
            case ConditionSlot():
                for rule in slot.rules:
                    if evaluate(rule.if_, self.env):
                        return rule.next
                return slot.else_
            case JumpSlot():
                return slot.to
            case AttachmentSlot():
                self.attach(slot)
                return slot.next
            case ExternalRequestSlot():
                self.call(slot)
                return None
            case TransferSlot():
                closed = slot.closed_text is not None and not self.env["within_working_hours"]
                self.say(slot.closed_text if closed else slot.text)
                self.effects.append(Transfer("slot", slot.id))
                st.slot, st.waiting = None, "none"
                return None
            case EndSlot():
                self.say(slot.text)
                self.effects.append(SessionEnded())
                st.slot, st.waiting = None, "none"
                return None
            case IntentSlot():
                return self.classify(slot)
            case LLMSlot():
                request_id = f"r{st.request_counter}"
                self.effects.append(self.render_llm(slot, request_id))
                st.request_counter += 1
                st.slot, st.waiting, st.pending_request_id = slot.id, "external", request_id
                return None

    def attach(self, slot: AttachmentSlot) -> None:
        url = render(slot.url, self.env).strip()
        if not url:
            raise ValueError(f"attachment url {slot.url!r} renders empty")
        caption = render(slot.text, self.env) if slot.text else ""
        if slot.as_ == "link":
            self.effects.append(Reply(f"{caption}\n{url}" if caption.strip() else url))
            return
        name = render(slot.name, self.env).strip() or url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        self.effects.append(SendFile(url, name or "file", caption))

    def call(self, slot: ExternalRequestSlot) -> None:
        st = self.st
        request_id = f"r{st.request_counter}"
        call = self.render_call(slot, request_id)
        st.request_counter += 1
        self.effects.append(call)
        st.slot, st.waiting, st.pending_request_id = slot.id, "external", request_id

    def render_llm(self, slot: LLMSlot, request_id: str) -> CallLLM:
        history = self.st.history[-2 * slot.history :] if slot.history else []
        return CallLLM(
            request_id=request_id,
            system=render(slot.system, self.env),
            history=list(history),
            prompt=render(slot.prompt, self.env),
            max_tokens=slot.max_tokens,
            timeout_s=float(slot.timeout_s),
        )

    def render_call(self, slot: ExternalRequestSlot, request_id: str) -> CallExternal:
        env = self.env
        url = render(slot.url, env).strip()
        if not url:
            raise ValueError(f"external_request url {slot.url!r} renders empty")
        return CallExternal(
            request_id=request_id,
            method=slot.method.upper(),
            url=url,
            headers={render(k, env): render(v, env) for k, v in slot.headers.items()},
            body=None if slot.body is None else render_value(slot.body, env),
            basic_auth=None if slot.auth is None else render(slot.auth.basic, env),
            timeout_s=float(slot.timeout_s),
            delay_s=float(slot.delay_s),
        )


def pending_call(
    agent: Agent, state: ChatState, now: datetime, ctx: TurnContext
) -> CallExternal | CallLLM | None:
    """The request a chat is waiting on, rendered again (same request id), to resume a turn that
    was interrupted mid-request (a crashed worker). None if the chat waits on no request."""
    if state.waiting != "external" or state.slot is None or state.pending_request_id is None:
        return None
    slot = agent.slot(state.slot)
    if not isinstance(slot, ExternalRequestSlot | LLMSlot):
        return None
    variables = taint.reveal(dict(state.variables), taint.secret_values(ctx.runtime))
    turn = _Turn(agent, msgspec.structs.replace(state, variables=variables), ctx, now)
    turn._build_env()
    try:
        if isinstance(slot, LLMSlot):
            return turn.render_llm(slot, state.pending_request_id)
        return turn.render_call(slot, state.pending_request_id)
    except Exception:  # noqa: BLE001 -- cannot render it again: the caller fails the request instead
        return None


def _kind(slot: Slot) -> str:
    return str(slot.__struct_config__.tag)
