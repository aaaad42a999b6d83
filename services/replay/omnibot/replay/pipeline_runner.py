"""Running a transcript through the whole pipeline: sandbox Omnidesk → ingress → RabbitMQ →
dialog → MongoDB → egress → sandbox Omnidesk, and reading back what the bot really did there.

`run_in_pipeline` needs the services running against `settings` and a sandbox serving
`sandbox_state` in this process. It imports and publishes the transcript's agent (overrides
applied), creates and activates a channel on the sandbox, registers the seed's two rules, gives
the fake external service the header's answers, and then plays the customer: each customer line
is written in the sandbox (which fires the rules' webhooks), the files of its attachment block
attached as the chat's "Attach file" does, and the run waits until the case shows as many new
outputs as the transcript expects for that line, or `turn_timeout_s` passes.
What it returns is read from the sandbox, never copied from the expectations:

- a staff reply is `bot` (or `file` when it carries an attachment: its file name and text);
- an internal note is a `transfer` (the bot label's removal goes with it); its reason is read
  from the note's summary, which says why the agent handed the chat over.

After a line that expects no output, and after the last line of each chat, the run also waits
`quiet_s` for outputs nobody expected, so that a bot which answers when it must not is caught.
Outputs that arrive late are put with the customer line they answer. `at` is measured from the
start of the run. Chats are cases of the sandbox, opened by each chat's first customer line.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from omnibot.agents.handoff import reason_of
from omnibot.replay.external import load_script
from omnibot.replay.scenario import agent_document, customer_said, masked_output
from omnibot.replay.transcript import (
    BotLine,
    CustomerLine,
    Event,
    Exchange,
    FileLine,
    FileOut,
    Output,
    Transcript,
    TransferLine,
    TransferOut,
    Visitor,
    exchanges,
)
from omnibot.sandbox.records import Message
from omnibot.sandbox.state import SandboxState
from omnibot.shared.settings import Settings
from omnibot.testkit.channels import set_up_channel
from omnibot.testkit.sandbox import SandboxClient


async def run_in_pipeline(
    transcript: Transcript,
    base_dir: Path,
    *,
    settings: Settings,
    sandbox_state: SandboxState,
    sandbox_url: str,
    external_url: str,
    turn_timeout_s: float = 10.0,
    quiet_s: float = 0.3,
) -> Transcript:
    """Play the transcript's customer lines through the running pipeline; what Omnidesk then shows."""
    document = agent_document(transcript, base_dir, external_url)
    async with aiohttp.ClientSession() as session:
        await load_script(session, external_url, transcript.header.external)
        channel = await set_up_channel(settings, sandbox_state, sandbox_url, document)
        await SandboxClient(session, sandbox_url).add_seed_rules(str(channel["webhook_url"]))
        player = _Player(session, sandbox_state, sandbox_url, transcript.header.visitor, external_url)
        played = exchanges(transcript)
        last_of_chat = {exchange.customer.chat: exchange for exchange in played}
        for exchange in played:
            last = last_of_chat[exchange.customer.chat] is exchange
            await player.play(exchange, turn_timeout_s=turn_timeout_s, quiet_s=quiet_s, last=last)
        player.settle_all()
    return Transcript(header=transcript.header, events=player.events())


def transfer_reason(note: str) -> str:
    """The reason of a transfer, from the note the bot left for the operator."""
    reason = reason_of(note)
    if reason is not None:
        return reason
    first_line = note.strip().split("\n", 1)[0]
    return f"unrecognised note: {first_line[:80]}"


def bot_outputs(state: SandboxState, case_id: int) -> list[Message]:
    """What the bot put in the case: its replies and its notes, in order."""
    return [m for m in state.case(case_id).messages if m.staff_id != 0]


@dataclass
class _Chat:
    case_id: int
    seen: int = 0  # outputs of the case already put with a customer line
    latest: list[Output] = field(default_factory=list)  # the outputs of its latest customer line


class _Player:
    """Plays customer lines in the sandbox and collects the bot's outputs per line."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        state: SandboxState,
        sandbox_url: str,
        visitor: Visitor,
        external_url: str,
    ) -> None:
        self._session = session
        self._state = state
        self._sandbox_url = sandbox_url
        self._visitor = visitor
        self._external_url = external_url
        self._chats: dict[str, _Chat] = {}
        self._urls: dict[str, str] = {}  # the sandbox's url of an attached file -> the transcript's
        self._played: list[tuple[CustomerLine, list[Output]]] = []
        self._started = time.time()

    async def play(self, exchange: Exchange, *, turn_timeout_s: float, quiet_s: float, last: bool) -> None:
        line = exchange.customer
        chat = self._chats.get(line.chat)
        if chat is not None:
            self._settle(line.chat, chat)  # late outputs belong to the line before
        at = self._elapsed()
        case_id = await self._customer_says(line.customer, None if chat is None else chat.case_id)
        if chat is None:
            chat = self._chats[line.chat] = _Chat(case_id)
        # The same list object in both places: settling the chat fills this line's outputs.
        chat.latest = []
        self._played.append((CustomerLine(customer=line.customer, chat=line.chat, at=at), chat.latest))
        expected = chat.seen + len(exchange.outputs)
        await self._wait(case_id, lambda n: n >= expected, turn_timeout_s)
        if last or not exchange.outputs:
            # No later line of this chat would reveal an output nobody expected: look for one now.
            await self._wait(case_id, lambda n: n > expected, quiet_s)
        self._settle(line.chat, chat)

    def settle_all(self) -> None:
        for label, chat in self._chats.items():
            self._settle(label, chat)

    def events(self) -> list[Event]:
        events: list[Event] = []
        for line, outputs in self._played:
            events.append(line)
            events.extend(outputs)
        return events

    def _elapsed(self) -> float:
        return round(time.time() - self._started, 3)

    async def _customer_says(self, text: str, case_id: int | None) -> int:
        visitor = self._visitor
        user = {"name": visitor.name, "email": visitor.email, "phone": visitor.phone}
        said = customer_said(text)
        answer = await SandboxClient(self._session, self._sandbox_url).customer_message(
            said.words, user=user, case_id=case_id, files=said.files()
        )
        self._urls.update(zip(answer["attachments"], said.urls, strict=True))
        return int(answer["case_id"])

    async def _wait(self, case_id: int, enough: Callable[[int], bool], within_s: float) -> None:
        """Wait until the number of the case's outputs satisfies `enough`, at most `within_s`.

        Running out of time is an answer too (fewer outputs than expected, or, waiting quietly,
        none extra): what the case then holds goes into the produced transcript and the diff.
        """
        with contextlib.suppress(TimeoutError):
            await self._state.wait_for(lambda state: enough(len(bot_outputs(state, case_id))), within_s)

    def _settle(self, label: str, chat: _Chat) -> None:
        messages = bot_outputs(self._state, chat.case_id)
        for message in messages[chat.seen :]:
            chat.latest.append(masked_output(self._output(label, message), self._external_url, self._urls))
        chat.seen = len(messages)

    def _output(self, label: str, message: Message) -> Output:
        at = round(message.created_at - self._started, 3)
        if message.note:
            return TransferLine(
                transfer=TransferOut(reason=transfer_reason(message.content)), chat=label, at=at
            )
        if message.attachments:
            file = FileOut(name=message.attachments[0].file_name, caption=message.content)
            return FileLine(file=file, chat=label, at=at)
        return BotLine(bot=message.content, chat=label, at=at)
