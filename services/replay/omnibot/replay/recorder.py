"""Recording live traffic as an `omnibot/transcript@1` file (`omnibot replay record`).

The recorder listens beside the services: a queue of its own bound to every partition of
`chat.inbound` and `chat.outbound` receives a copy of each accepted webhook and each outbound
action of the channel, with the time it saw them. Customer lines come from the webhooks (a repeated
delivery of the same content within the dedup window is left out, as webhook mode would); outputs
come from the actions dialog decided (texts, files, transfers). Chats are labelled by case id.
Dead letters of `chat.inbound` convert the same way (`omnibot replay from-dlq`), so a message that
failed can be replayed against a fixed agent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

import msgspec
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from omnibot.agents.handoff import reason_of
from omnibot.replay.transcript import (
    HEADER_TAG,
    BotLine,
    CustomerLine,
    Event,
    FileLine,
    FileOut,
    Header,
    Transcript,
    TransferLine,
    TransferOut,
    Visitor,
)
from omnibot.shared.messages import (
    InboundMessage,
    OutboundAction,
    SendFile,
    SendText,
    inbound_decoder,
    outbound_decoder,
)
from omnibot.shared.topology import Topology


class Recorder:
    """Turns observed messages of one channel into transcript lines, timed from the first."""

    def __init__(
        self, channel_id: int, *, dedup_window_s: float = 30.0, clock: Callable[[], float] = time.time
    ):
        self._channel_id = channel_id
        self._dedup_window_s = dedup_window_s
        self._clock = clock
        self._started: float | None = None
        self._seen: dict[tuple[str, str], float] = {}
        self.events: list[Event] = []
        self.visitor = Visitor()

    def _at(self, now: float) -> float:
        if self._started is None:
            self._started = now
        return round(now - self._started, 3)

    def inbound(self, message: InboundMessage, now: float | None = None) -> None:
        if message.channel_id != self._channel_id:
            return
        now = self._clock() if now is None else now
        key = (message.chat_id, message.fingerprint or message.event_id)
        seen = self._seen.get(key)
        self._seen[key] = now
        if seen is not None and now - seen < self._dedup_window_s:
            return  # the same content delivered again: one customer message
        if not self.events:
            v = message.visitor
            self.visitor = Visitor(name=v.name, email=v.email, phone=v.phone)
        self.events.append(CustomerLine(chat=message.chat_id, at=self._at(now), customer=message.text))

    def outbound(self, action: OutboundAction, now: float | None = None) -> None:
        if action.channel_id != self._channel_id or action.maybe_duplicate:
            return
        at = self._at(self._clock() if now is None else now)
        if isinstance(action, SendText):
            self.events.append(BotLine(chat=action.chat_id, at=at, bot=action.text))
        elif isinstance(action, SendFile):
            self.events.append(
                FileLine(chat=action.chat_id, at=at, file=FileOut(name=action.name, caption=action.caption))
            )
        else:
            reason = reason_of(action.summary) or "slot"
            self.events.append(TransferLine(chat=action.chat_id, at=at, transfer=TransferOut(reason=reason)))

    def transcript(self, agent_path: str) -> Transcript:
        # A chat's outputs can only follow its first customer line: drop what answers nothing seen.
        started: set[str] = set()
        kept: list[Event] = []
        for event in self.events:
            if isinstance(event, CustomerLine):
                started.add(event.chat)
            elif event.chat not in started:
                continue
            kept.append(event)
        return Transcript(
            header=Header(omnibot=HEADER_TAG, agent=agent_path, visitor=self.visitor), events=kept
        )


async def record(
    connection: AbstractRobustConnection, topology: Topology, recorder: Recorder, stop: asyncio.Event
) -> None:
    """Feed the recorder with copies of both stages' messages until `stop` is set."""
    async with connection.channel() as channel:
        taps = []
        for stage in topology.stages:
            exchange = await channel.get_exchange(stage.name, ensure=False)
            # Exclusive and auto-deleted: the tap disappears with the recorder.
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            for partition in range(stage.partitions):
                await queue.bind(exchange, routing_key=stage.routing_key(partition))
            taps.append((queue, stage.name == topology.inbound.name))

        def on(inbound: bool) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
            async def handle(message: AbstractIncomingMessage) -> None:
                try:
                    if inbound:
                        recorder.inbound(inbound_decoder.decode(message.body))
                    else:
                        recorder.outbound(outbound_decoder.decode(message.body))
                except msgspec.DecodeError:
                    pass  # not ours to judge: the services dead-letter what they cannot read

            return handle

        for queue, inbound in taps:
            await queue.consume(on(inbound), no_ack=True)
        await stop.wait()


def from_dead_letters(channel_id: int, bodies: Iterable[dict[str, object]]) -> Recorder:
    """A recorder fed with inbound dead letters' bodies, for `omnibot replay from-dlq`."""
    recorder = Recorder(channel_id, dedup_window_s=0.0)
    for index, body in enumerate(bodies):
        try:
            message = msgspec.convert(body, InboundMessage)
        except msgspec.ValidationError:
            continue
        recorder.inbound(message, now=float(index))
    return recorder
