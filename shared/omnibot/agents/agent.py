"""The agent file format `omnibot/agent@1`: its types, its validation on import, its export.

Users write these files, so this module owns the contract: one Struct per slot type (a tagged
union on `"type"`), `load_agent` that refuses a broken file with *every* problem listed (each with
its slot id and a message a person can act on), and `dump_agent` whose output `load_agent` gives
back unchanged. Nothing here runs an agent; that is `engine.py`.
"""

from __future__ import annotations

import functools
import re
import typing
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from omnibot.agents import conditions
from omnibot.agents.hours import HoursInvalid, parse_schedule
from omnibot.agents.intents import IntentModel
from omnibot.agents.patterns import pattern_problem

if TYPE_CHECKING:
    from omnibot.agents.compiled import CompiledAgent

FORMAT: Final = "omnibot/agent@1"
METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
MAX_DELAY_S: Final = 60.0
MAX_TIMEOUT_S: Final = 120.0
# Bounds of an imported file: validating and exporting cost time in proportion to its size, and
# the largest real agents have tens of slots. Stored versions are not re-checked against them.
MAX_AGENT_BYTES: Final = 1024 * 1024
MAX_SLOTS: Final = 1000
# Set by the engine for every turn: an agent that assigns them would see its value overwritten.
RUNTIME_PINNED: Final = frozenset(
    {
        "client_message",
        "client_attachments",
        "date",
        "chat_id",
        "channel_id",
        "agent_name",
        "within_working_hours",
    }
)
DEFAULT_SESSION_TIMEOUT_S: Final = 900.0


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong with an agent file. `slot` is None for problems of the file as a whole."""

    slot: str | None
    message: str
    severity: Literal["error", "warning"] = "error"


class AgentInvalid(ValueError):
    """The agent file cannot be imported; `problems` lists every error (and the warnings)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [
            f"- {p.severity}: {'slot ' + repr(p.slot) + ': ' if p.slot else ''}{p.message}" for p in problems
        ]
        errors = sum(p.severity == "error" for p in problems)
        super().__init__(f"agent is invalid ({errors} error(s)):\n" + "\n".join(lines))


class AgentUnreadable(AgentInvalid):
    """The file is not JSON at all (or nested too deeply to decode): nothing else could be checked."""


# -- the format -------------------------------------------------------------------------------------


class Button(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    title: str
    next: str
    synonyms: list[str] = []  # more phrases that choose this button in free text


class Intent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    examples: list[str]
    next: str


class WorkingHours(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    timezone: str
    days: dict[str, str]  # "mon-fri" -> "09:00-18:00" (see omnibot.agents.hours)
    holidays: list[str] = []  # "YYYY-MM-DD"


class Rule(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    # A condition stays the JSON users write; `conditions.check` validates it.
    if_: dict[str, Any] = msgspec.field(name="if")
    next: str


class BasicAuth(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    basic: str  # "user:password", a template (the seed uses "{{channel_webhook_token}}")


class _Slot(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True):
    id: str


class TextSlot(_Slot, tag="text", kw_only=True, frozen=True):
    text: str
    next: str


class ButtonMenuSlot(_Slot, tag="button_menu", kw_only=True, frozen=True):
    text: str
    buttons: list[Button]
    fallback: str | None = None  # None: show the menu again


class InputSlot(_Slot, tag="input", kw_only=True, frozen=True):
    variable: str
    next: str
    text: str | None = None
    pattern: str | None = None  # re.search against the reply; anchor it (^...$) for a whole match
    retry_text: str | None = None  # None: ask `text` again


class MemorySlot(_Slot, tag="memory", kw_only=True, frozen=True):
    set: dict[str, Any]
    next: str


class ConditionSlot(_Slot, tag="condition", kw_only=True, frozen=True):
    rules: list[Rule]
    else_: str = msgspec.field(name="else")


class JumpSlot(_Slot, tag="jump", kw_only=True, frozen=True):
    to: str


class AttachmentSlot(_Slot, tag="attachment", kw_only=True, frozen=True):
    url: str
    next: str
    name: str = ""  # "": the last segment of the url
    as_: Literal["file", "link"] = msgspec.field(default="file", name="as")
    text: str | None = None


class ExternalRequestSlot(_Slot, tag="external_request", kw_only=True, frozen=True):
    url: str
    next: str
    method: str = "GET"
    headers: dict[str, str] = {}
    auth: BasicAuth | None = None
    body: Any = None
    timeout_s: float = 10.0
    delay_s: float = 0.0
    save: dict[str, str] = {}  # variable -> dotted path in the JSON response
    on_error: str | None = None  # None: `next`


class IntentSlot(_Slot, tag="intent", kw_only=True, frozen=True):
    intents: list[Intent]
    fallback: str
    threshold: float | None = None  # None: the agent's `match_threshold`


class LLMSlot(_Slot, tag="llm", kw_only=True, frozen=True):
    prompt: str
    next: str
    system: str = ""
    history: int = 0  # past exchanges (customer message + bot replies) sent along
    save: str | None = None
    send: bool = True
    max_tokens: int = 300
    timeout_s: float = 20.0
    on_error: str | None = None  # None: `next`


class TransferSlot(_Slot, tag="transfer", kw_only=True, frozen=True):
    text: str | None = None
    closed_text: str | None = None  # sent instead of `text` outside working hours


class EndSlot(_Slot, tag="end", kw_only=True, frozen=True):
    text: str | None = None


Slot = (
    TextSlot
    | ButtonMenuSlot
    | InputSlot
    | MemorySlot
    | ConditionSlot
    | JumpSlot
    | AttachmentSlot
    | ExternalRequestSlot
    | TransferSlot
    | EndSlot
    | IntentSlot
    | LLMSlot
)
SLOT_TYPES: Final[dict[str, type[_Slot]]] = {
    str(cls.__struct_config__.tag): cls for cls in typing.get_args(Slot) if issubclass(cls, _Slot)
}


class Agent(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """One agent version. Immutable: a published version is shared by every chat that uses it."""

    format: Literal["omnibot/agent@1"] = FORMAT
    name: str
    variables: dict[str, Any] = {}
    start: str
    slots: list[Slot]
    match_threshold: float = 0.7
    session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S  # 0: never
    on_timeout: str | None = None
    working_hours: WorkingHours | None = None

    def slot(self, slot_id: str) -> Slot | None:
        """The slot with this id, or None."""
        return self._index.get(slot_id)

    @functools.cached_property
    def _index(self) -> dict[str, Slot]:
        # Built once per agent object (dict=True gives the instance a __dict__ for the cache);
        # equality and encoding only look at the fields.
        index: dict[str, Slot] = {}
        for s in self.slots:
            index.setdefault(s.id, s)
        return index

    @functools.cached_property
    def compiled(self) -> CompiledAgent:
        """What matching needs, prepared once per agent object (indexes, models, schedule)."""
        from omnibot.agents.compiled import CompiledAgent  # here: it imports this module

        return CompiledAgent(self)


def targets(slot: Slot) -> Iterator[tuple[str, str]]:
    """Every slot id this slot can lead to, as (field, target) pairs."""
    match slot:
        case ButtonMenuSlot():
            for i, button in enumerate(slot.buttons):
                yield f"buttons[{i}].next", button.next
            if slot.fallback is not None:
                yield "fallback", slot.fallback
        case ConditionSlot():
            for i, rule in enumerate(slot.rules):
                yield f"rules[{i}].next", rule.next
            yield "else", slot.else_
        case JumpSlot():
            yield "to", slot.to
        case ExternalRequestSlot():
            yield "next", slot.next
            if slot.on_error is not None:
                yield "on_error", slot.on_error
        case IntentSlot():
            for i, intent in enumerate(slot.intents):
                yield f"intents[{i}].next", intent.next
            yield "fallback", slot.fallback
        case LLMSlot():
            yield "next", slot.next
            if slot.on_error is not None:
                yield "on_error", slot.on_error
        case TextSlot() | InputSlot() | MemorySlot() | AttachmentSlot():
            yield "next", slot.next
        case TransferSlot() | EndSlot():
            pass


# -- import -----------------------------------------------------------------------------------------

_TOP_LEVEL: Final = frozenset(
    {
        "format",
        "name",
        "variables",
        "start",
        "slots",
        "match_threshold",
        "session_timeout_s",
        "on_timeout",
        "working_hours",
    }
)
_AT: Final = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


class _Report:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, slot: str | None, message: str) -> None:
        self.problems.append(Problem(slot, message, "error"))

    def warning(self, slot: str | None, message: str) -> None:
        self.problems.append(Problem(slot, message, "warning"))

    @property
    def failed(self) -> bool:
        return any(p.severity == "error" for p in self.problems)


def load_agent(data: bytes | str | dict[str, Any]) -> tuple[Agent, list[Problem]]:
    """Validate an agent file and build the Agent; returns it with its warnings.

    Raises `AgentInvalid` listing every error (and the warnings) if anything is wrong. A file
    (bytes or text) over `MAX_AGENT_BYTES` or `MAX_SLOTS`, or nested too deeply to decode, is
    refused before anything else is checked.
    """
    report = _Report()
    raw: Any = data
    if isinstance(data, bytes | str):
        size = len(data.encode() if isinstance(data, str) else data)
        if size > MAX_AGENT_BYTES:
            report.error(None, f"the file is {size} bytes; an agent file may have at most {MAX_AGENT_BYTES}")
            raise AgentInvalid(report.problems)
        try:
            raw = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            report.error(None, f"not JSON: {exc}")
            raise AgentUnreadable(report.problems) from None
        except RecursionError:
            report.error(None, "the JSON is nested too deeply")
            raise AgentUnreadable(report.problems) from None
        given = raw.get("slots") if isinstance(raw, dict) else None
        slot_count = len(given) if isinstance(given, list) else 0
        if slot_count > MAX_SLOTS:
            report.error(None, f"the agent has {slot_count} slots; at most {MAX_SLOTS} are allowed")
            raise AgentInvalid(report.problems)
    if not isinstance(raw, dict):
        report.error(None, "an agent file must be a JSON object")
        raise AgentInvalid(report.problems)

    _check_top_level(raw, report)
    raw_slots = raw.get("slots")
    slots: list[Slot] = []
    known_ids: set[str] = set()
    if isinstance(raw_slots, list):
        known_ids = _collect_ids(raw_slots, report)
        for i, raw_slot in enumerate(raw_slots):
            slot = _check_slot(i, raw_slot, report)
            if slot is not None:
                slots.append(slot)
                _check_slot_semantics(slot, known_ids, report)
    start = raw.get("start")
    if isinstance(start, str) and start and known_ids and start not in known_ids:
        report.error(None, f"`start` points to unknown slot {start!r}")
    options = _check_options(raw, known_ids, report)
    for slot in slots:
        _check_understanding(slot, options.get("match_threshold", 0.7), report)

    if report.failed:
        raise AgentInvalid(report.problems)
    agent = Agent(
        format=FORMAT,
        name=raw["name"],
        variables=dict(raw.get("variables") or {}),
        start=raw["start"],
        slots=slots,
        **options,
    )
    _check_reachability(agent, report)
    return agent, report.problems


def _check_top_level(raw: dict[str, Any], report: _Report) -> None:
    fmt = raw.get("format")
    if fmt is None:
        report.error(None, f'missing `format` (expected "{FORMAT}")')
    elif fmt != FORMAT:
        report.error(None, f'unsupported `format` {fmt!r} (expected "{FORMAT}")')
    for field in ("name", "start"):
        value = raw.get(field)
        if value is None:
            report.error(None, f"missing `{field}`")
        elif not isinstance(value, str) or not value.strip():
            report.error(None, f"`{field}` must be a non-empty string")
    variables = raw.get("variables", {})
    if not isinstance(variables, dict):
        report.error(None, "`variables` must be an object (name -> initial value)")
    else:
        for name in sorted(set(variables) & RUNTIME_PINNED):
            report.warning(None, f"variable `{name}` is set by the runtime on every turn")
    slots = raw.get("slots")
    if slots is None:
        report.error(None, "missing `slots`")
    elif not isinstance(slots, list) or not slots:
        report.error(None, "`slots` must be a non-empty list")
    for key in raw:
        if key not in _TOP_LEVEL:
            report.warning(None, f"unknown field `{key}` is ignored")


def _collect_ids(raw_slots: list[Any], report: _Report) -> set[str]:
    seen: dict[str, int] = {}
    for i, raw_slot in enumerate(raw_slots):
        if not isinstance(raw_slot, dict):
            continue  # reported by _check_slot
        slot_id = raw_slot.get("id")
        if isinstance(slot_id, str) and slot_id:
            if slot_id in seen:
                report.error(slot_id, f"duplicate id (slots[{seen[slot_id]}] and slots[{i}])")
            else:
                seen[slot_id] = i
    return set(seen)


def _check_slot(i: int, raw: Any, report: _Report) -> Slot | None:
    """Check the fields of one slot; the Struct if they are all right, else None."""
    if not isinstance(raw, dict):
        report.error(None, f"slots[{i}] must be an object")
        return None
    slot_id = raw.get("id")
    if not isinstance(slot_id, str) or not slot_id:
        report.error(None, f"slots[{i}]: `id` must be a non-empty string")
        slot_id = None
    label = slot_id or f"slots[{i}]"
    kind = raw.get("type")
    if kind is None:
        report.error(slot_id, f"{label}: missing `type` (one of {', '.join(SLOT_TYPES)})")
        return None
    cls = SLOT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        report.error(slot_id, f"unknown slot type {kind!r} (one of {', '.join(SLOT_TYPES)})")
        return None
    fields_ok = _check_fields(raw, cls, "", slot_id, report, skip={"type", "id"})
    if slot_id is None or not fields_ok:
        return None
    slot: Slot = msgspec.convert(raw, Slot)
    return slot


def _check_fields(
    raw: dict[str, Any],
    cls: type[msgspec.Struct],
    prefix: str,
    slot_id: str | None,
    report: _Report,
    skip: frozenset[str] | set[str] = frozenset(),
) -> bool:
    """Check every field of `raw` against Struct `cls`, reporting each problem; True if none."""
    ok = True
    known = set(skip)
    for field in msgspec.structs.fields(cls):
        known.add(field.encode_name)
        if field.encode_name in skip:
            continue
        path = prefix + field.encode_name
        if field.encode_name not in raw:
            if field.required:
                report.error(slot_id, f"missing field `{path}`")
                ok = False
            continue
        ok &= _check_value(raw[field.encode_name], field.type, path, slot_id, report)
    for key in raw:
        if key not in known:
            report.warning(slot_id, f"unknown field `{prefix}{key}` is ignored")
    return ok


def _check_value(value: Any, tp: Any, path: str, slot_id: str | None, report: _Report) -> bool:
    """Check one value against a type; nested Structs and lists of them are checked item by item."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list and args and _is_struct(args[0]) and isinstance(value, list):
        results = [
            _check_value(item, args[0], f"{path}[{i}]", slot_id, report) for i, item in enumerate(value)
        ]
        return all(results)
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        # Item by item, so that a problem names its key (msgspec would say `$[...]`).
        results = [_check_value(v, args[1], f"{path}.{k}", slot_id, report) for k, v in value.items()]
        return all(results)
    if _is_struct(tp) and isinstance(value, dict):
        return _check_fields(value, tp, path + ".", slot_id, report)
    if args and type(None) in args and value is None:
        return True
    struct_args = [a for a in args if _is_struct(a)]
    if struct_args and isinstance(value, dict):  # Optional[Struct]
        return _check_fields(value, struct_args[0], path + ".", slot_id, report)
    if origin is Literal and value not in args:
        choices = " or ".join(repr(a) for a in args)
        report.error(slot_id, f"`{path}` must be {choices}, not {value!r}")
        return False
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        found = _AT.match(str(exc))
        message, at = (found["msg"], found["path"] or "") if found else (str(exc), "")
        report.error(slot_id, f"`{path}{at}`: {message[:1].lower()}{message[1:]}")
        return False
    return True


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _check_slot_semantics(slot: Slot, known_ids: set[str], report: _Report) -> None:
    """What the types cannot say: references, regexes, bounds, methods."""
    sid = slot.id
    for field, target in targets(slot):
        if target not in known_ids:
            report.error(sid, f"`{field}` points to unknown slot {target!r}")
    match slot:
        case ButtonMenuSlot():
            if not slot.buttons:
                report.error(sid, "`buttons` must not be empty")
        case InputSlot():
            if not slot.variable:
                report.error(sid, "`variable` must not be empty")
            _warn_pinned(sid, [slot.variable], report)
            if slot.pattern is not None:
                if (problem := pattern_problem(slot.pattern)) is not None:
                    report.error(sid, f"bad regex in `pattern` {slot.pattern[:80]!r}: {problem}")
                if not slot.retry_text and not slot.text:
                    report.warning(
                        sid, "`pattern` without `retry_text` or `text`: a wrong answer gets no reply"
                    )
        case MemorySlot():
            if "" in slot.set:
                report.error(sid, "`set` has an empty variable name")
            _warn_pinned(sid, list(slot.set), report)
        case ConditionSlot():
            for i, rule in enumerate(slot.rules):
                for message in conditions.check(rule.if_, f"rules[{i}].if"):
                    report.error(sid, message)
                for message in conditions.warnings(rule.if_, f"rules[{i}].if"):
                    report.warning(sid, message)
        case AttachmentSlot():
            if not slot.url.strip():
                report.error(sid, "`url` must not be empty")
        case ExternalRequestSlot():
            if slot.method.upper() not in METHODS:
                report.error(sid, f"bad `method` {slot.method!r} (one of {', '.join(METHODS)})")
            if not slot.url.strip():
                report.error(sid, "`url` must not be empty")
            if not 0 <= slot.delay_s <= MAX_DELAY_S:
                report.error(sid, f"`delay_s` must be between 0 and {MAX_DELAY_S:g}, not {slot.delay_s:g}")
            if not 0 < slot.timeout_s <= MAX_TIMEOUT_S:
                report.error(
                    sid, f"`timeout_s` must be above 0 and at most {MAX_TIMEOUT_S:g}, not {slot.timeout_s:g}"
                )
            _warn_pinned(sid, list(slot.save), report)
        case _:
            pass


def _warn_pinned(sid: str, names: list[str], report: _Report) -> None:
    for name in names:
        if name in RUNTIME_PINNED:
            report.warning(
                sid, f"variable `{name}` is set by the runtime on every turn; setting it has no effect"
            )


def _check_reachability(agent: Agent, report: _Report) -> None:
    roots = [agent.start, *([agent.on_timeout] if agent.on_timeout else [])]
    reached = set(roots)
    queue = deque(roots)
    while queue:
        slot = agent.slot(queue.popleft())
        if slot is None:
            continue
        for _, target in targets(slot):
            if target not in reached:
                reached.add(target)
                queue.append(target)
    for slot in agent.slots:
        if slot.id not in reached:
            report.warning(slot.id, f"unreachable from `start` ({agent.start!r})")


# -- the agent-level options of free text, inactivity and working hours (issue 15) -----------------


_OPTION_DEFAULTS: Final[dict[str, Any]] = {
    "match_threshold": 0.7,
    "session_timeout_s": DEFAULT_SESSION_TIMEOUT_S,
    "on_timeout": None,
    "working_hours": None,
}


def _check_options(raw: dict[str, Any], known_ids: set[str], report: _Report) -> dict[str, Any]:
    """Check the optional top-level fields; the valid ones, as Agent keyword arguments."""
    found: dict[str, Any] = {}
    if "match_threshold" in raw:
        value = raw["match_threshold"]
        if not _is_fraction(value):
            report.error(None, f"`match_threshold` must be a number from 0 to 1, not {value!r}")
        else:
            found["match_threshold"] = float(value)
    if "session_timeout_s" in raw:
        value = raw["session_timeout_s"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            report.error(None, f"`session_timeout_s` must be a number of seconds (0: off), not {value!r}")
        else:
            found["session_timeout_s"] = float(value)
    if "on_timeout" in raw:
        value = raw["on_timeout"]
        if not isinstance(value, str) or not value:
            report.error(None, "`on_timeout` must be a slot id")
        elif known_ids and value not in known_ids:
            report.error(None, f"`on_timeout` points to unknown slot {value!r}")
        else:
            found["on_timeout"] = value
            if found.get("session_timeout_s", DEFAULT_SESSION_TIMEOUT_S) == 0:
                report.warning(None, "`on_timeout` never runs: `session_timeout_s` is 0")
    if "working_hours" in raw:
        hours = _check_working_hours(raw["working_hours"], report)
        if hours is not None:
            found["working_hours"] = hours
    return found


def _is_fraction(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 <= value <= 1


def _check_working_hours(value: Any, report: _Report) -> WorkingHours | None:
    if not isinstance(value, dict):
        report.error(None, "`working_hours` must be an object with `timezone` and `days`")
        return None
    if not _check_fields(value, WorkingHours, "working_hours.", None, report):
        return None
    hours = msgspec.convert(value, WorkingHours)
    try:
        parse_schedule(hours.timezone, hours.days, hours.holidays)
    except HoursInvalid as exc:
        report.error(None, f"`working_hours`: {exc}")
        return None
    return hours


def _check_understanding(slot: Slot, match_threshold: float, report: _Report) -> None:
    """The new slot fields: intents, thresholds, llm prompts; overlapping intents warn."""
    sid = slot.id
    match slot:
        case ButtonMenuSlot():
            for i, button in enumerate(slot.buttons):
                if any(not s.strip() for s in button.synonyms):
                    report.error(sid, f"`buttons[{i}].synonyms` has an empty phrase")
        case IntentSlot():
            _check_intents(slot, match_threshold, report)
        case LLMSlot():
            if not slot.prompt.strip():
                report.error(sid, "`prompt` must not be empty")
            if not 0 <= slot.history <= 50:
                report.error(sid, f"`history` must be from 0 to 50 exchanges, not {slot.history}")
            if not 1 <= slot.max_tokens <= 32_000:
                report.error(sid, f"`max_tokens` must be from 1 to 32000, not {slot.max_tokens}")
            if not 0 < slot.timeout_s <= MAX_TIMEOUT_S:
                report.error(
                    sid, f"`timeout_s` must be above 0 and at most {MAX_TIMEOUT_S:g}, not {slot.timeout_s:g}"
                )
            if slot.save is not None:
                _warn_pinned(sid, [slot.save], report)
        case _:
            pass


def _check_intents(slot: IntentSlot, match_threshold: float, report: _Report) -> None:
    sid = slot.id
    if not slot.intents:
        report.error(sid, "`intents` must not be empty")
    if slot.threshold is not None and not _is_fraction(slot.threshold):
        report.error(sid, f"`threshold` must be a number from 0 to 1, not {slot.threshold!r}")
    names: set[str] = set()
    for i, intent in enumerate(slot.intents):
        if not intent.name.strip():
            report.error(sid, f"`intents[{i}].name` must not be empty")
        elif intent.name in names:
            report.error(sid, f"intent {intent.name!r} is defined twice")
        names.add(intent.name)
        if not [e for e in intent.examples if e.strip()]:
            report.error(sid, f"intent {intent.name!r} has no examples")
    own = slot.threshold
    threshold = own if own is not None and _is_fraction(own) else match_threshold
    model = IntentModel([(i.name, i.examples) for i in slot.intents])
    for name, other, example in model.overlaps(threshold):
        report.warning(sid, f"example {example!r} of intent {name!r} matches intent {other!r} as well")


# -- export -----------------------------------------------------------------------------------------


def dump_agent(agent: Agent) -> bytes:
    """The agent as an importable, indented JSON file: `load_agent(dump_agent(a))` equals `a`."""
    doc = msgspec.to_builtins(agent)
    # The optional agent-level fields appear only when set, so older files export as they were.
    for key, default in _OPTION_DEFAULTS.items():
        if doc.get(key) == default:
            del doc[key]
    # Readers look for a slot's id first; the encoder would put the tag field first.
    doc["slots"] = [{"id": s["id"], **{k: v for k, v in s.items() if k != "id"}} for s in doc["slots"]]
    return msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n"
