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
    JumpSlot,
    MemorySlot,
    Slot,
    TextSlot,
    TransferSlot,
)
from omnibot.agents.chat_text import match_button, parse_client_message, render_menu, without_block
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


Event = CustomerMessage | ExternalResult


class TurnContext(msgspec.Struct, frozen=True, kw_only=True):
    # chat_id, channel_id, agent_name, channel_webhook_url, channel_webhook_token,
    # channel_visitor_id/email/name/phone/login: NEVER persisted (the token is a secret).
    runtime: Mapping[str, Any]
    max_slots_per_turn: int = 50
    apology_text: str = "Извините, что-то пошло не так. Перевожу вас на оператора."


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


Effect = Reply | SendFile | CallExternal | Transfer | SessionEnded


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
    if isinstance(event, ExternalResult):
        if st.waiting != "external" or event.request_id != st.pending_request_id:
            return st, []  # a stale or duplicate result: the request it answers is gone
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
    return st, turn.effects


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
        if isinstance(event, CustomerMessage):
            self.on_message(event.text, event.attachments)
        else:
            self.on_result(event)

    def on_message(self, raw: str, known_attachments: list[str] | None = None) -> None:
        st = self.st
        if known_attachments is None:
            text, attachments = parse_client_message(raw)
        else:
            text, attachments = without_block(raw, known_attachments), list(known_attachments)
        new_session = st.slot is None or st.waiting == "none"
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
                titles = [render(b.title, self.env) for b in slot.buttons]
                chosen = match_button(text, titles)
                if chosen is not None:
                    self.run(slot.buttons[chosen].next)
                else:
                    self.run(slot.fallback if slot.fallback is not None else slot.id)
            case InputSlot():
                if slot.pattern is not None and not search(slot.pattern, text):
                    self.say(slot.retry_text or slot.text)  # keep waiting in this slot
                    return
                self.set_var(slot.variable, text)
                self.run(slot.next)
            case _:
                raise _AbortTurnError("error", f"slot {slot.id!r} ({_kind(slot)}) does not wait for a reply")

    def on_result(self, result: ExternalResult) -> None:
        st = self.st
        self._build_env()
        slot = self.enter(st.slot)
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
                titles = [render(b.title, self.env) for b in slot.buttons]
                text = render_menu(render(slot.text, self.env), titles)
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
                self.say(slot.text)
                self.effects.append(Transfer("slot", slot.id))
                st.slot, st.waiting = None, "none"
                return None
            case EndSlot():
                self.say(slot.text)
                self.effects.append(SessionEnded())
                st.slot, st.waiting = None, "none"
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


def pending_call(agent: Agent, state: ChatState, now: datetime, ctx: TurnContext) -> CallExternal | None:
    """The request a chat is waiting on, rendered again (same request id), to resume a turn that
    was interrupted mid-request (a crashed worker). None if the chat waits on no request."""
    if state.waiting != "external" or state.slot is None or state.pending_request_id is None:
        return None
    slot = agent.slot(state.slot)
    if not isinstance(slot, ExternalRequestSlot):
        return None
    variables = taint.reveal(dict(state.variables), taint.secret_values(ctx.runtime))
    turn = _Turn(agent, msgspec.structs.replace(state, variables=variables), ctx, now)
    turn._build_env()
    try:
        return turn.render_call(slot, state.pending_request_id)
    except Exception:  # noqa: BLE001 -- cannot render it again: the caller fails the request instead
        return None


def _kind(slot: Slot) -> str:
    return str(slot.__struct_config__.tag)
