"""The seed's operator transfer, end to end: what Omnidesk shows after the agent removed its label.

examples/agents/operator-transfer.json hands the chat over the seed's way, by an External Request
that deletes the bot label from the case. The sandbox must then show the bot's texts, the case
without the bot label, and no bot reply to what the customer writes next, even on an account
whose "changed" rule still calls the bot (no label condition): then only omnibot itself can keep
quiet, because it recognises the label removal as a transfer.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from omnibot.agents.agent import load_agent
from omnibot.agents.engine import CallExternal, ChatState, CustomerMessage, TurnContext, step
from omnibot.replay.engine_runner import START
from omnibot.replay.pipeline_runner import bot_outputs
from omnibot.replay.scenario import agent_document
from omnibot.replay.transcript import load
from omnibot.testkit.channels import set_up_channel
from tests.harness import customer_says, wait_bot_messages
from tests.replay.conftest import ReplayPipeline

HERE = Path(__file__).parent
TRANSCRIPT = HERE / "operator-transfer.jsonl"
GREETING = "Здравствуйте, Anna! Я бот-помощник."
MENU = "Чем помочь?\n1. Оператор\n2. Ничего, спасибо"


def test_the_request_is_the_seeds() -> None:
    """The label id is a number in a Memory slot and reaches the body as a number."""
    agent, _ = load_agent(agent_document(load(TRANSCRIPT), HERE, "http://unused"))
    ctx = TurnContext(
        runtime={
            "chat_id": "2000",
            "channel_webhook_url": "https://test.omnidesk.ru",
            "channel_webhook_token": "bot@x.ru:key",
        }
    )
    state, _ = step(agent, ChatState(), CustomerMessage(text="Здравствуйте"), START, ctx)
    _, effects = step(agent, state, CustomerMessage(text="Оператор"), START, ctx)
    call = next(e for e in effects if isinstance(e, CallExternal))
    assert (call.method, call.url) == ("PUT", "https://test.omnidesk.ru/api/cases/2000.json")
    assert call.basic_auth == "bot@x.ru:key"
    assert call.headers == {"Content-Type": "application/json"}
    assert call.body == {"case": {"delete_labels": [87470]}}


@pytest.mark.integration
async def test_after_the_transfer_the_bot_is_quiet_and_unlabelled(replay_pipeline: ReplayPipeline) -> None:
    p = replay_pipeline
    # 87470 in the example is the sandbox's «На боте» label, so the example runs there unchanged.
    assert p.sandbox.bot_label_id == 87470
    channel = await set_up_channel(
        p.settings, p.sandbox, p.sandbox_url, agent_document(load(TRANSCRIPT), HERE, p.external_url)
    )
    async with aiohttp.ClientSession() as session:
        for on in ("incoming", "changed"):
            rule = {"webhook_url": channel["webhook_url"], "on": on, "require_label": False}
            async with session.post(f"{p.sandbox_url}/sandbox/rules", json=rule) as response:
                assert response.status == 201

    case = (await customer_says(p.sandbox_url, "Здравствуйте"))["case_id"]
    assert await wait_bot_messages(p.sandbox, case, 2) == [GREETING, MENU]
    assert p.sandbox.bot_label_id in p.sandbox.case(case).labels

    await customer_says(p.sandbox_url, "Оператор", case_id=case)
    assert (await wait_bot_messages(p.sandbox, case, 3))[-1] == "Перевожу на оператора"
    await p.sandbox.wait_for(lambda s: s.bot_label_id not in s.case(case).labels, timeout=10)
    handed_over = len(bot_outputs(p.sandbox, case))

    await customer_says(p.sandbox_url, "Здравствуйте, есть кто живой?", case_id=case)
    # The webhook was answered; give a wrong reply the time a right one takes, then look.
    with pytest.raises(TimeoutError):
        await p.sandbox.wait_for(lambda s: len(bot_outputs(s, case)) > handed_over, timeout=1.0)
    assert p.sandbox.bot_label_id not in p.sandbox.case(case).labels
