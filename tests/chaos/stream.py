"""The customers of a chaos run, playing Omnidesk's side, and the reckoning of what they got back.

The driver plays Omnidesk and its customers: for each customer message it stores the message in
the sandbox case (no rules are registered, so the sandbox fires no webhook itself), then POSTs the
seed's webhook body to the channel's webhook URL, retrying on anything but a 200 (a 503 while the
broker is down is not an acceptance; Omnidesk's rule or the customer would try again). A chat's
next message is sent only after its previous webhook was accepted, so the order of sending is the
order of acceptance; chats run concurrently.

The agent (agents/echo.json) answers every customer message with exactly one predictable reply:
"1:<text>" to a chat's first message, "2:<text>" to every later one. Messages are "c<chat>-<n>",
so the replies a chat must get, and their order, follow from what was sent.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from omnibot.testkit.sandbox import SandboxClient
from tests.chaos.cluster import POLL_S, ChaosError

WEBHOOK_TIMEOUT_S = 10.0  # one webhook POST; ingress answers after the broker confirmed
WEBHOOK_GIVE_UP_S = 90.0  # a message whose webhook is refused this long fails the run
FIRST_RETRY_S, MAX_RETRY_S = 0.1, 1.0  # the driver's own backoff between webhook attempts


@dataclass
class Chat:
    """One customer chat (an Omnidesk case) and the messages accepted for it, in order."""

    number: int
    case_id: int | None = None
    user_id: int = 0
    sent: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"c{self.number}"

    def expected(self) -> list[str]:
        """The replies the echo agent prescribes for what was sent, in order."""
        return [("1:" if n == 0 else "2:") + text for n, text in enumerate(self.sent)]


def webhook_body(chat: Chat, text: str) -> dict[str, Any]:
    """The body of the seed's Omnidesk rules (product.md), placeholders filled in as strings."""
    user = str(chat.user_id)
    return {
        "event": "new_message",
        "message": {"kind": "text", "text": text},
        "visitor": {
            "id": user,
            "fields": {"email": f"{chat.name}@example.com", "login": user, "name": chat.name, "phone": ""},
        },
        "chat_id": str(chat.case_id),
    }


class CustomerStream:
    """A steady stream of customer messages over many chats until told to stop."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        sandbox: SandboxClient,
        webhook_url: str,
        chats: list[Chat],
        pace_s: float,
    ) -> None:
        self._http = http
        self._sandbox = sandbox
        self._webhook_url = webhook_url
        self.chats = chats
        self._pace_s = pace_s
        self.answers: Counter[str] = Counter()  # what ingress answered, e.g. {"200": 812, "503": 40}

    async def run(self, stop: asyncio.Event) -> None:
        # A task group: if one chat fails (its webhook refused for too long), the others stop too.
        async with asyncio.TaskGroup() as group:
            for chat in self.chats:
                group.create_task(self._chat(chat, stop))

    async def _chat(self, chat: Chat, stop: asyncio.Event) -> None:
        # Staggered starts, then each chat at its own pace: the chats interleave as real ones do.
        await asyncio.sleep(random.uniform(0, self._pace_s))  # deliberate: pacing of the stream
        while not stop.is_set():
            await self._say(chat, f"{chat.name}-{len(chat.sent)}")
            await asyncio.sleep(self._pace_s * random.uniform(0.5, 1.5))  # deliberate: pacing

    async def _say(self, chat: Chat, text: str) -> None:
        user = {"name": chat.name, "email": f"{chat.name}@example.com"}
        stored = await self._sandbox.customer_message(text, user=user, case_id=chat.case_id)
        chat.case_id, chat.user_id = int(stored["case_id"]), int(stored["user_id"])
        await self._deliver(webhook_body(chat, text))
        chat.sent.append(text)

    async def _deliver(self, body: dict[str, Any]) -> None:
        """POST the webhook until ingress accepts it (200), as Omnidesk or the customer would."""
        delay = FIRST_RETRY_S
        deadline = time.monotonic() + WEBHOOK_GIVE_UP_S
        while True:
            outcome = await self._post(body)
            self.answers[outcome] += 1
            if outcome == "200":
                return
            if time.monotonic() > deadline:
                raise ChaosError(
                    f"ingress refused a webhook for {WEBHOOK_GIVE_UP_S:.0f}s ({outcome}): {body}"
                )
            await asyncio.sleep(delay)  # deliberate: the sender's backoff between attempts
            delay = min(delay * 2, MAX_RETRY_S)

    async def _post(self, body: dict[str, Any]) -> str:
        try:
            async with self._http.post(
                self._webhook_url, json=body, timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
            ) as response:
                await response.read()
                return str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__


# --- the reckoning --------------------------------------------------------------------------


@dataclass
class ChatOutcome:
    chat: Chat
    replies: list[str]  # the bot's messages in the case, in Omnidesk's order
    notes: int  # internal notes (a transfer to an operator leaves one)

    @property
    def done(self) -> bool:
        return self.replies == self.chat.expected() and self.notes == 0


async def outcome_of(sandbox: SandboxClient, chat: Chat) -> ChatOutcome:
    if chat.case_id is None:
        return ChatOutcome(chat, [], 0)
    case = await sandbox.case(chat.case_id)
    replies = [str(m["content"]) for m in case["messages"] if m["staff_id"]]
    return ChatOutcome(chat, replies, len(case["notes"]))


async def wait_drained(
    sandbox: SandboxClient, chats: list[Chat], timeout: float
) -> tuple[list[ChatOutcome], float | None]:
    """Poll the sandbox until every chat has exactly its expected replies, or the time runs out.

    Returns the last outcomes and the monotonic time at which everything was there (None if never).
    """
    deadline = time.monotonic() + timeout
    while True:
        outcomes = list(await asyncio.gather(*(outcome_of(sandbox, chat) for chat in chats)))
        if all(o.done for o in outcomes):
            return outcomes, time.monotonic()
        if time.monotonic() > deadline:
            return outcomes, None
        await asyncio.sleep(POLL_S * 2.5)  # state in another process: there is nothing to wait on


@dataclass
class Tally:
    """One row of the table. `delivered` counts distinct prescribed replies that arrived (so
    expected - delivered were lost); `duplicates` counts extra copies of any reply; `out_of_order`
    counts replies that arrived after a reply the agent produced later; `unexpected` counts bot
    messages the agent never prescribed and internal notes (a transfer to an operator)."""

    fault: str
    sent: int
    expected: int
    delivered: int
    duplicates: int
    out_of_order: int
    unexpected: int
    recovery_s: float | None
    note: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.recovery_s is not None
            and self.delivered == self.expected
            and self.duplicates == self.out_of_order == self.unexpected == 0
        )


def count_out_of_order(positions: list[int]) -> int:
    """How many of these (expected positions, in arrival order) came after a later one."""
    late, highest = 0, -1
    for position in positions:
        if position < highest:
            late += 1
        highest = max(highest, position)
    return late


def reckon(
    fault: str, outcomes: list[ChatOutcome], fault_end: float, drained_at: float | None, note: str = ""
) -> Tally:
    tally = Tally(fault, 0, 0, 0, 0, 0, 0, None if drained_at is None else drained_at - fault_end, note)
    for outcome in outcomes:
        expected = outcome.chat.expected()
        position = {text: n for n, text in enumerate(expected)}
        counts = Counter(outcome.replies)
        firsts = list(dict.fromkeys(outcome.replies))  # each reply once, at its first arrival
        missing = [text for text in expected if text not in counts]
        extra = [text for text in firsts if text not in position]
        late = count_out_of_order([position[text] for text in firsts if text in position])
        doubled = sum(n - 1 for n in counts.values())
        tally.sent += len(outcome.chat.sent)
        tally.expected += len(expected)
        tally.delivered += len(expected) - len(missing)
        tally.duplicates += doubled
        tally.out_of_order += late
        tally.unexpected += len(extra) + outcome.notes
        if missing or extra or late or doubled or outcome.notes:
            tally.problems.append(
                f"{outcome.chat.name} (case {outcome.chat.case_id}): missing {missing[:5]}, "
                f"unexpected {extra[:5]}, {doubled} duplicates, {late} out of order, {outcome.notes} notes; "
                f"got {outcome.replies[-8:]} (last 8), expected ...{expected[-8:]}"
            )
    return tally


TALLIES: list[Tally] = []  # every phase of this run, for the table at the end

HEADER = ("fault", "messages sent", "replies expected", "delivered", "duplicates", "out of order", "recovery")


def render_table(tallies: list[Tally]) -> str:
    """A plain-text table, one row per fault (recovery: from the end of the fault to all delivered)."""
    rows = [HEADER] + [
        (
            t.fault,
            str(t.sent),
            str(t.expected),
            str(t.delivered),
            str(t.duplicates),
            str(t.out_of_order),
            "not recovered" if t.recovery_s is None else f"{t.recovery_s:.1f} s",
        )
        for t in tallies
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = [
        " | ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
