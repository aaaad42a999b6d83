"""The shipped example agents import cleanly and are what they say they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnibot.agents.agent import SLOT_TYPES, ExternalRequestSlot, MemorySlot, load_agent

EXAMPLES = Path(__file__).parent.parent.parent / "examples" / "agents"


@pytest.mark.parametrize("name", ["support.json", "operator-transfer.json", "support-demo.json"])
def test_example_imports_without_a_single_problem(name: str) -> None:
    _, problems = load_agent((EXAMPLES / name).read_bytes())
    assert problems == []


def test_support_uses_every_slot_type_and_calls_out_through_a_variable() -> None:
    agent, _ = load_agent((EXAMPLES / "support.json").read_bytes())
    assert {str(type(s).__struct_config__.tag) for s in agent.slots} == set(SLOT_TYPES)
    requests = [s for s in agent.slots if isinstance(s, ExternalRequestSlot)]
    assert requests and all(s.url.startswith("{{api_base}}/") for s in requests)
    assert agent.variables["api_base"] == "https://shop.example"
    assert any(s.delay_s > 0 for s in requests) and any(s.on_error for s in requests)


def test_operator_transfer_starts_with_the_memory_slot_of_the_seed() -> None:
    agent, _ = load_agent((EXAMPLES / "operator-transfer.json").read_bytes())
    first = agent.slot(agent.start)
    assert isinstance(first, MemorySlot)
    assert isinstance(first.set["bot_label_id"], int)
