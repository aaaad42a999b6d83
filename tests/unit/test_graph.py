"""The agent graph: edges with labels, unreachable slots, and the three renderings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from omnibot.agents.graph import build_graph, render

ROOT = Path(__file__).resolve().parents[2]

DOC: dict[str, Any] = {
    "format": "omnibot/agent@1",
    "name": "g",
    "start": "route",
    "on_timeout": "bye",
    "slots": [
        {
            "id": "route",
            "type": "intent",
            "intents": [{"name": "order", "examples": ["заказ"], "next": "menu"}],
            "fallback": "menu",
        },
        {
            "id": "menu",
            "type": "button_menu",
            "text": "Чем помочь?",
            "buttons": [{"title": 'Оператор "живой"', "next": "op"}],
        },
        {"id": "ai", "type": "llm", "prompt": "{{client_message}}", "next": "menu", "on_error": "op"},
        {"id": "op", "type": "transfer"},
        {"id": "bye", "type": "end"},
        {"id": "lost", "type": "text", "text": "никогда", "next": "nowhere"},
    ],
}


def test_edges_and_reachability() -> None:
    graph = build_graph(DOC)
    edges = {(e.source, e.target, e.label, e.kind) for e in graph.edges}
    assert ("route", "menu", "order", "intent") in edges
    assert ("route", "menu", "fallback", "fallback") in edges
    assert ("menu", "op", 'Оператор "живой"', "button") in edges
    assert ("menu", "menu", "fallback", "fallback") in edges  # shown again
    assert ("ai", "op", "on_error", "error") in edges
    assert graph.unreachable == ["ai", "lost"]  # bye is reached through on_timeout
    assert next(e for e in graph.edges if e.target == "nowhere").dangling
    assert next(n for n in graph.nodes if n.id == "route").start


def test_dot() -> None:
    dot = render(build_graph(DOC), "dot")
    assert dot.startswith('digraph "g" {')
    assert '"menu" -> "op" [label="Оператор \\"живой\\""];' in dot
    assert '"lost" [label="lost (text)\\nникогда" style=dashed' in dot
    assert '"(timeout)" -> "bye"' in dot


def test_mermaid() -> None:
    text = render(build_graph(DOC), "mermaid")
    assert text.startswith("flowchart TD\n")
    assert 'n1 -->|"Оператор #quot;живой#quot;"| n3' in text
    assert "class n2 unreachable;" in text
    assert "(missing)" in text


@pytest.mark.parametrize("name", ["support.json", "operator-transfer.json", "support-demo.json"])
def test_svg_is_well_formed_with_every_slot(name: str) -> None:
    doc = json.loads((ROOT / "examples" / "agents" / name).read_text())
    svg = render(build_graph(doc), "svg")
    tree = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    ids = {g.get("data-id") for g in tree.iter(f"{ns}g")}
    assert ids == {s["id"] for s in doc["slots"]}


def test_svg_marks_unreachable() -> None:
    svg = render(build_graph(DOC), "svg")
    assert 'class="node unreachable" data-id="lost"' in svg
    with pytest.raises(ValueError, match="unknown graph format"):
        render(build_graph(DOC), "png")  # type: ignore[arg-type]
