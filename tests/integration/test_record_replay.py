"""Recording a channel's live traffic and re-running it: through the engine and the pipeline."""

from __future__ import annotations

import asyncio
from pathlib import Path

from omnibot.replay.cli import EXIT_DIFFERENT, EXIT_SAME, record_channel, run_file
from omnibot.replay.transcript import load
from tests.harness import customer_says, wait_bot_messages
from tests.integration.conftest import Pipeline


async def test_record_then_replay_gives_the_same_conversation(pipeline: Pipeline, tmp_path: Path) -> None:
    out = tmp_path / "recorded.jsonl"
    stop = asyncio.Event()
    recording = asyncio.create_task(
        record_channel(pipeline.settings, pipeline.channel["id"], out, None, stop)
    )
    await asyncio.sleep(0.3)  # let the recorder bind its queues before the traffic (deliberate)
    case = (await customer_says(pipeline.sandbox_url, "Добрый день"))["case_id"]
    await wait_bot_messages(pipeline.sandbox, case, 2)
    await customer_says(pipeline.sandbox_url, "1", case_id=case)
    await wait_bot_messages(pipeline.sandbox, case, 3)
    await customer_says(pipeline.sandbox_url, "x1", case_id=case)
    await wait_bot_messages(pipeline.sandbox, case, 4)
    await asyncio.sleep(0.3)  # the recorder's copy of the last action arrives after the reply (deliberate)
    stop.set()
    assert await recording == EXIT_SAME
    recorded = load(out)
    kinds = [type(e).__name__ for e in recorded.events]
    assert kinds == [
        "CustomerLine",
        "BotLine",
        "BotLine",
        "CustomerLine",
        "BotLine",
        "CustomerLine",
        "BotLine",
    ]
    assert (tmp_path / "recorded.jsonl.agent.json").exists()

    assert await run_file(out, pipeline.settings, engine_only=True) == EXIT_SAME
    assert await run_file(out, pipeline.settings, engine_only=False) == EXIT_SAME

    changed = tmp_path / "changed.jsonl"
    changed.write_text(out.read_text().replace("Только цифры, пожалуйста", "Только цифры!"))
    (tmp_path / "changed.jsonl.agent.json").write_text((tmp_path / "recorded.jsonl.agent.json").read_text())
    assert await run_file(changed, pipeline.settings, engine_only=True) == EXIT_DIFFERENT
