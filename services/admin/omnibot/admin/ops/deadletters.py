"""Dead letters: what a stage gave up on, and re-driving them to their stage. Needs RabbitMQ."""

from __future__ import annotations

from collections.abc import Sequence

from omnibot.admin.ops.context import Context, Refused, broker_refusal
from omnibot.admin.ops.views import check_page, dead_view, page
from omnibot.admin.schemas import DEFAULT_PAGE, DeadLetterView, Page, ReplayResult
from omnibot.shared.deadletters import BOTH, StageName, list_dead, replay_dead


class DeadLetterOperations:
    def __init__(self, context: Context) -> None:
        self._ctx = context

    async def list_dead_letters(
        self, *, stage: StageName | None = None, limit: int = DEFAULT_PAGE, offset: int = 0
    ) -> Page[DeadLetterView]:
        check_page(limit, offset)
        broker, connection = await self._ctx.connect()
        try:
            found = await list_dead(connection, broker.topology, _stages(stage))
        except Exception as exc:  # noqa: BLE001 - aio-pika raises many kinds; the broker is the cause
            raise broker_refusal(exc) from None
        views = [dead_view(d) for d in found]
        return page(views[offset : offset + limit], len(views), limit, offset)

    async def replay_dead_letters(
        self, ids: Sequence[str] | None, *, stage: StageName | None = None
    ) -> ReplayResult:
        """Re-drive the dead letters with these ids (None: every one) to their stage."""
        if ids is not None and not ids:
            raise Refused("invalid", ["give the ids of the dead letters to re-drive, or all"])
        broker, connection = await self._ctx.connect()
        wanted = None if ids is None else {i.strip() for i in ids}
        try:
            replayed = await replay_dead(connection, broker.topology, wanted, _stages(stage))
        except Exception as exc:  # noqa: BLE001 - aio-pika raises many kinds; the broker is the cause
            raise broker_refusal(exc) from None
        done = {d.id for d in replayed}
        missing = sorted((wanted or set()) - done)
        return ReplayResult(replayed=[dead_view(d) for d in replayed], missing=missing)


def _stages(stage: StageName | None) -> tuple[StageName, ...]:
    return BOTH if stage is None else (stage,)
