"""`omnibot agent try` and `omnibot agent graph`: an agent in the terminal, and drawn.

`try FILE|NAME` chats with an agent with the engine in this process: no broker, no database (a
NAME is read once from MongoDB: its published version, the one new chats get; the latest while
none is published). External requests and the language model are
really called (the same network policy and `LLM_*` settings as the dialog service), or answered
from `--fixtures FILE`: `{"external": [{"method", "path", "status", "body", "delay_s"}, ...],
"llm": ["an answer", {"status": 500}, ...]}` (external entries as in a transcript header; llm
answers in order, the last one repeating). After every message it shows the replies, files,
the transfer, the variables that changed and how free text was understood (menu and intent
scores). Lines starting with `/` are commands: `/wait SECONDS` lets time pass (the inactivity
timeout), `/vars`, `/restart`, `/quit`.

`graph FILE|NAME --format dot|mermaid|svg` prints the agent's graph (`omnibot.agents.graph`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import msgspec

from omnibot.agents import engine
from omnibot.agents.agent import Agent, AgentInvalid, load_agent
from omnibot.agents.graph import FORMATS, build_graph, render
from omnibot.agents.llm import LLMFailure, parse_response
from omnibot.launcher.exits import EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from omnibot.shared.settings import Settings

ACTIONS = ("try", "graph")


def add_commands(agent: Any, leaf: Any) -> None:
    """Add `try` and `graph` to the `omnibot agent` subcommands."""
    chat = leaf(agent, "try", "chat with an agent in the terminal (engine in-process, no services)")
    chat.add_argument("agent", metavar="FILE|NAME", help="an agent file, or the name of an imported agent")
    chat.add_argument(
        "--fixtures", type=Path, help="answer external requests and the LLM from this JSON file"
    )
    chat.add_argument("--name", default="Гость", help="the customer's name (channel_visitor_name)")
    chat.add_argument("--at", help="the time the chat starts (ISO 8601; default now)")
    graph = leaf(agent, "graph", "print the agent as a graph: slots, and every way between them")
    graph.add_argument("agent", metavar="FILE|NAME", help="an agent file, or the name of an imported agent")
    graph.add_argument("--format", choices=FORMATS, default="mermaid")


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    try:
        doc, source = _document(args.agent, settings)
    except (OSError, ValueError) as exc:
        print(f"omnibot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "graph":
        sys.stdout.write(render(build_graph(doc), args.format))
        return EXIT_OK
    try:
        agent, warnings = load_agent(doc)
    except AgentInvalid as exc:
        print(f"omnibot: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    for warning in warnings:
        print(f"warning: {warning.slot or 'agent'}: {warning.message}", file=sys.stderr)
    try:
        fixtures = _fixtures(args.fixtures) if args.fixtures else None
        start = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    except (OSError, ValueError) as exc:
        print(f"omnibot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    session = TrySession(agent, settings, fixtures, args.name, start, sys.stdout, source=source)
    asyncio.run(session.loop(sys.stdin))
    return EXIT_OK


def _document(source: str, settings: Settings) -> tuple[dict[str, Any], str]:
    """The agent document, and where it came from (the file, or the stored version)."""
    path = Path(source)
    if path.is_file():
        raw: Any = msgspec.json.decode(path.read_bytes())
        origin = str(path)
    else:
        body, origin = asyncio.run(_stored(source, settings))
        raw = msgspec.json.decode(body)
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: an agent file must be a JSON object")
    return raw, origin


async def _stored(name: str, settings: Settings) -> tuple[bytes, str]:
    """The agent's published version, the one new chats get (the latest while none is published)."""
    from omnibot.admin.operations import Management, Refused
    from omnibot.launcher.manage import with_management

    chosen = ""

    async def export(m: Management) -> bytes:
        nonlocal chosen
        summary = await m.agents.show_agent(name)
        if summary.published_version is not None:
            version, chosen = summary.published_version, f"version {summary.published_version} (published)"
        else:
            version, chosen = (
                summary.latest_version,
                f"version {summary.latest_version} (latest; none published)",
            )
        return await m.agents.export_agent(name, version)

    try:
        answer = await with_management(settings, export)
    except Refused as exc:
        raise ValueError(f"no agent file or agent named {name!r} ({exc.code})") from None
    if not isinstance(answer, bytes):
        raise ValueError(f"agent {name!r} could not be exported")
    return answer, f"{name} {chosen}, from MongoDB"


class Fixtures(msgspec.Struct, forbid_unknown_fields=True):
    external: list[Any] = []
    llm: list[Any] = []


def _fixtures(path: Path) -> Fixtures:
    try:
        return msgspec.json.decode(path.read_bytes(), type=Fixtures)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from None


class TrySession:
    """One chat with an agent in the terminal."""

    def __init__(
        self,
        agent: Agent,
        settings: Settings,
        fixtures: Fixtures | None,
        name: str,
        start: datetime,
        out: TextIO,
        *,
        source: str = "",
    ) -> None:
        from omnibot.replay.external import ExternalScript
        from omnibot.replay.transcript import FakeResponse

        self.agent, self.settings, self.fixtures, self.out = agent, settings, fixtures, out
        self.source = source
        self.now = start
        self.state: engine.ChatState | None = None
        self.with_operator = False
        self.ctx = engine.TurnContext(
            runtime={
                "chat_id": "try",
                "channel_id": 0,
                "agent_name": agent.name,
                "channel_webhook_url": "",
                "channel_webhook_token": "",
                "channel_visitor_id": "try",
                "channel_visitor_email": "",
                "channel_visitor_name": name,
                "channel_visitor_phone": "",
                "channel_visitor_login": "try",
            },
            explain=True,
        )
        self._script = (
            ExternalScript(msgspec.convert(fixtures.external, list[FakeResponse])) if fixtures else None
        )
        self._llm_used = 0
        self._fetcher: Any = None
        self._llm: Any = None

    def show(self, tag: str, text: str) -> None:
        lines = text.split("\n")
        self.out.write(f"{tag:>9} {lines[0]}\n")
        for line in lines[1:]:
            self.out.write(f"{'':>9} {line}\n")
        self.out.flush()

    async def loop(self, lines: TextIO) -> None:
        self.show(
            "agent", f"{self.agent.name} (start: {self.agent.start}); /wait SECONDS, /vars, /restart, /quit"
        )
        if self.source:
            self.show("from", self.source)
        try:
            while True:
                self.out.write("you> ")
                self.out.flush()
                line = lines.readline()
                if not line:
                    break
                text = line.rstrip("\n")
                if text.startswith("/"):
                    if not await self.command(text):
                        break
                    continue
                await self.turn(engine.CustomerMessage(text=text))
        finally:
            if self._fetcher is not None:
                await self._fetcher.close()

    async def command(self, text: str) -> bool:
        word, _, rest = text.partition(" ")
        match word:
            case "/quit" | "/exit":
                return False
            case "/restart":
                self.state, self.with_operator = None, False
                self.show("restart", "a new chat")
            case "/vars":
                for name, value in sorted((self.state.variables if self.state else {}).items()):
                    self.show("var", f"{name} = {_value(value)}")
            case "/wait":
                try:
                    seconds = float(rest)
                except ValueError:
                    self.show("error", "/wait SECONDS")
                    return True
                self.now += timedelta(seconds=seconds)
                self.show("time", f"{seconds:g} s later: {self.now.isoformat(timespec='seconds')}")
                due = engine.timeout_due(self.agent, self.state) if self.state else None
                if due is not None and self.now.timestamp() >= due and not self.with_operator:
                    self.show("timeout", f"silent for {self.agent.session_timeout_s:g} s: on_timeout runs")
                    await self.turn(
                        engine.SessionTimeout(activity=self.state.last_activity if self.state else 0)
                    )
            case _:
                self.show("error", f"unknown command {word} (/wait SECONDS, /vars, /restart, /quit)")
        return True

    async def turn(self, event: engine.Event) -> None:
        if self.with_operator:
            self.show("operator", "the chat is with an operator: the bot says nothing (/restart)")
            return
        before = dict(self.state.variables) if self.state else {}
        for _ in range(20):
            self.state, effects = engine.step(self.agent, self.state, event, self.now, self.ctx)
            call = self.report(effects)
            if call is None:
                break
            event = await self.answer(call)
        self.report_variables(before, self.state.variables if self.state else {})

    def report(self, effects: list[engine.Effect]) -> engine.CallExternal | engine.CallLLM | None:
        call: engine.CallExternal | engine.CallLLM | None = None
        for effect in effects:
            match effect:
                case engine.Reply(text=text):
                    self.show("bot", text)
                case engine.SendFile(url=url, name=name, caption=caption):
                    self.show("file", f"{name} <{url}>" + (f" {caption}" if caption else ""))
                case engine.Transfer(reason=reason, detail=detail):
                    self.show("transfer", f"to an operator ({reason}: {detail})")
                    self.with_operator = True
                case engine.SessionEnded():
                    self.show("end", "the session ended; the next message starts again")
                case engine.Explain(
                    kind=kind, chosen=chosen, score=score, ambiguous=ambiguous, scores=scores
                ):
                    verdict = "ambiguous" if ambiguous else (f"→ {chosen}" if chosen else "no match")
                    ranked = ", ".join(f"{name} {value:.2f}" for name, value in scores[:5])
                    self.show("scores", f"{kind} {verdict} ({score:.2f}): {ranked}")
                case engine.CallExternal(method=method, url=url):
                    self.show("request", f"{method} {url}")
                    call = effect
                case engine.CallLLM(prompt=prompt, history=history):
                    self.show("llm", f"asking the model ({len(history)} past messages): {prompt[:80]}")
                    call = effect
        return call

    def report_variables(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        for name in sorted(set(before) | set(after)):
            if name in ("client_message", "client_attachments"):
                continue
            if name not in after:
                self.show("unset", name)
            elif before.get(name, _NOTHING) != after[name]:
                self.show("set", f"{name} = {_value(after[name])}")

    async def answer(self, call: engine.CallExternal | engine.CallLLM) -> engine.Event:
        if isinstance(call, engine.CallExternal):
            result = self._fixture_external(call) if self._script else await self._real_external(call)
            self.show("response", f"{result.status if result.status is not None else result.error}")
            return result
        answer = self._fixture_llm(call) if self.fixtures else await self._real_llm(call)
        self.show("model", answer.text[:80] if answer.text is not None else f"failed: {answer.error}")
        return answer

    def _fixture_external(self, call: engine.CallExternal) -> engine.ExternalResult:
        assert self._script is not None
        response = self._script.take(call.method, call.url)
        if response is None:
            return engine.ExternalResult(request_id=call.request_id, status=None, error="no fixture")
        if response.delay_s > call.timeout_s:
            return engine.ExternalResult(request_id=call.request_id, status=None, error="timeout")
        return engine.ExternalResult(request_id=call.request_id, status=response.status, body=response.body)

    def _fixture_llm(self, call: engine.CallLLM) -> engine.LLMResult:
        assert self.fixtures is not None
        answers = self.fixtures.llm
        if not answers:
            return engine.LLMResult(request_id=call.request_id, text=None, error="no fixture")
        entry = answers[min(self._llm_used, len(answers) - 1)]
        self._llm_used += 1
        if isinstance(entry, str):
            return engine.LLMResult(request_id=call.request_id, text=entry)
        status = entry.get("status", 200) if isinstance(entry, dict) else None
        parsed = parse_response(status, entry.get("body") if isinstance(entry, dict) else None)
        if isinstance(parsed, LLMFailure):
            return engine.LLMResult(request_id=call.request_id, text=None, error=parsed.reason)
        return engine.LLMResult(request_id=call.request_id, text=parsed.text)

    async def _ensure_clients(self) -> None:
        if self._fetcher is None:
            from omnibot.dialog.fetch import ExternalFetcher
            from omnibot.dialog.llm import LLMCaller, LLMProvider
            from omnibot.shared.net.policy import NetworkPolicy

            self._fetcher = ExternalFetcher(
                NetworkPolicy.from_setting(self.settings.external_request_allow_networks)
            )
            await self._fetcher.start()
            s = self.settings
            self._llm = (
                LLMCaller(self._fetcher, LLMProvider(s.llm_base_url, s.llm_api_key, s.llm_model), None),
                LLMProvider(s.llm_base_url, s.llm_api_key, s.llm_model),
            )

    async def _real_external(self, call: engine.CallExternal) -> engine.ExternalResult:
        await self._ensure_clients()
        from omnibot.dialog.fetch import fetch_with

        # The same translation of a slot's call into a request as the dialog service makes.
        return await fetch_with(self._fetcher)(call)

    async def _real_llm(self, call: engine.CallLLM) -> engine.LLMResult:
        await self._ensure_clients()
        caller, provider = self._llm
        result: engine.LLMResult = await caller.ask(call, provider)
        return result


_NOTHING = object()


def _value(value: Any) -> str:
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= 120 else text[:119] + "…"
