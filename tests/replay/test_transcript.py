"""The transcript format, the fake service's matching and the comparison: pure, milliseconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnibot.replay.compare import compare, render
from omnibot.replay.external import ExternalScript
from omnibot.replay.scenario import Said, agent_document, customer_said, masked, with_external
from omnibot.replay.transcript import (
    BotLine,
    CustomerLine,
    FakeResponse,
    FileLine,
    Transcript,
    TranscriptError,
    TransferLine,
    chats,
    dump,
    exchanges,
    load,
    parse,
)

HERE = Path(__file__).parent
HEADER = '{"omnibot": "transcript@1", "agent": "agents/menus.json"}'


def _parse(*lines: str) -> Transcript:
    return parse("\n".join([HEADER, *lines]), "t.jsonl")


def test_every_kind_of_line_and_the_defaults() -> None:
    transcript = parse(
        "\n".join(
            [
                "# a comment, then a blank line",
                "",
                '{"omnibot": "transcript@1", "agent": "a.json", "variables": {"api": "{{external}}"},'
                ' "external": [{"path": "/x"}], "visitor": {"name": "Анна"}}',
                '{"customer": "Привет", "at": 0.5}',
                '{"bot": "Здравствуйте"}',
                '{"file": {"name": "a.pdf"}, "chat": "c1"}',
                '{"transfer": {"reason": "loop"}, "at": 1}',
            ]
        )
    )
    assert transcript.header.external == [FakeResponse(path="/x")]
    assert transcript.header.external[0].method == "GET"
    assert transcript.header.external[0].status == 200
    assert transcript.header.visitor.name == "Анна"
    kinds = [type(e) for e in transcript.events]
    assert kinds == [CustomerLine, BotLine, FileLine, TransferLine]
    assert transcript.events[0].at == 0.5
    assert {e.chat for e in transcript.events} == {"c1"}


def test_dump_gives_back_what_parse_read() -> None:
    for path in sorted(HERE.glob("*.jsonl")):
        transcript = load(path)
        text = dump(transcript)
        assert parse(text) == transcript, path.name
        assert text.startswith('{"omnibot":"transcript@1","agent":')
        assert "\\u" not in text  # Russian stays readable


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"customer": "a"}'], "t.jsonl:1: the first line must be the header"),
        ([HEADER, '{"customer": "a", "bot": "b"}'], "t.jsonl:2: an event line has exactly one of"),
        ([HEADER, '{"said": "a"}'], "t.jsonl:2: an event line has exactly one of"),
        ([HEADER, '{"customer": "a", "chta": "c2"}'], "t.jsonl:2: Object contains unknown field `chta`"),
        ([HEADER, "{not json"], "t.jsonl:2: not JSON"),
        ([HEADER, '"text"'], "t.jsonl:2: a line must be a JSON object"),
        ([HEADER, '{"bot": "hi"}'], "t.jsonl:2: an output of chat 'c1' before any customer line of it"),
        (
            [HEADER, "", "# c", '{"customer": "a"}', '{"bot": "b", "chat": "c2"}'],
            "t.jsonl:5: an output of chat 'c2'",
        ),
        (
            [HEADER, '{"customer": "a"}', '{"transfer": {"reason": "why"}}'],
            "t.jsonl:3: transfer reason 'why'",
        ),
        ([HEADER, '{"customer": "a", "at": 2}', '{"bot": "b", "at": 1}'], "t.jsonl:3: `at` 1 is earlier"),
        ([HEADER, '{"customer": 5}'], "t.jsonl:2: Expected `str`, got `int` - at `$.customer`"),
        (['{"omnibot": "transcript@1", "agent": "a", "external": [{"path": "x"}]}'], "path 'x' must start"),
        (
            ['{"omnibot": "transcript@1", "agent": "a", "external": [{"path": "/", "status": 99}]}'],
            "status 99",
        ),
        (['{"omnibot": "transcript@2", "agent": "a"}'], "t.jsonl:1: the first line must be the header"),
        ([], "t.jsonl: empty transcript"),
    ],
)
def test_problems_name_the_file_and_line(lines: list[str], message: str) -> None:
    with pytest.raises(TranscriptError) as caught:
        parse("\n".join(lines), "t.jsonl")
    assert message in str(caught.value)


def test_outputs_belong_to_the_latest_customer_line_of_their_chat() -> None:
    transcript = parse(
        "\n".join(
            [
                HEADER,
                '{"customer": "a1"}',
                '{"customer": "b1", "chat": "c2"}',
                '{"bot": "to a1"}',
                '{"bot": "to b1", "chat": "c2"}',
                '{"customer": "a2"}',
                '{"bot": "to a2"}',
            ]
        )
    )
    grouped = [
        (x.customer.customer, [o.bot for o in x.outputs if isinstance(o, BotLine)])
        for x in exchanges(transcript)
    ]
    assert grouped == [("a1", ["to a1"]), ("b1", ["to b1"]), ("a2", ["to a2"])]
    assert chats(transcript) == ["c1", "c2"]


def test_interleaving_and_timing_do_not_change_the_comparison() -> None:
    interleaved = _parse(
        '{"customer": "a", "at": 0}', '{"customer": "b", "chat": "c2", "at": 1}', '{"bot": "x", "at": 2}'
    )
    grouped = _parse('{"customer": "a"}', '{"bot": "x"}', '{"customer": "b", "chat": "c2"}')
    assert compare(interleaved, grouped) is None


def test_the_rendering_shows_what_a_diff_must_show() -> None:
    transcript = _parse(
        '{"customer": "Меню "}',
        '{"bot": "Чем помочь?\\n1. Чай\\n2. Кофе"}',
        '{"file": {"name": "a.pdf", "caption": "Счёт"}}',
        '{"file": {"name": "b.png"}}',
        '{"bot": "   "}',
        '{"transfer": {"reason": "slot"}}',
    )
    assert render(transcript) == [
        "[c1] customer  Меню·",
        "[c1] bot       Чем помочь?",
        "               1. Чай",
        "               2. Кофе",
        "[c1] file      a.pdf | Счёт",
        "[c1] file      b.png",
        "[c1] bot       '   '",
        "[c1] transfer  slot",
    ]


def test_a_difference_is_a_unified_diff_naming_both_lines() -> None:
    expected = _parse('{"customer": "Привет"}', '{"bot": "Здравствуйте!"}', '{"bot": "Чем помочь?"}')
    produced = _parse('{"customer": "Привет"}', '{"bot": "Добрый день!"}', '{"bot": "Чем помочь?"}')
    diff = compare(expected, produced)
    assert diff is not None
    lines = diff.splitlines()
    assert lines[:2] == ["--- expected", "+++ produced"]
    assert "-[c1] bot       Здравствуйте!" in lines
    assert "+[c1] bot       Добрый день!" in lines
    assert " [c1] bot       Чем помочь?" in lines
    assert compare(expected, expected) is None


def test_the_first_unused_match_wins_then_the_last_repeats() -> None:
    script = ExternalScript(
        [
            FakeResponse(path="/orders/1", status=200),
            FakeResponse(path="/orders/*", status=201),
            FakeResponse(path="/orders/1", method="POST", status=202),
        ]
    )
    statuses = [getattr(script.take("GET", "https://any.host/orders/1"), "status", None) for _ in range(3)]
    assert statuses == [200, 201, 201]
    assert script.take("post", "/orders/1") == FakeResponse(path="/orders/1", method="POST", status=202)
    assert script.take("GET", "/orders/2") == FakeResponse(path="/orders/*", status=201)
    assert script.take("GET", "/order/1") is None
    assert script.take("DELETE", "/orders/1") is None


def test_paths_match_with_or_without_a_query_and_in_any_script() -> None:
    script = ExternalScript(
        [
            FakeResponse(path="/search?q=чай", status=200),
            FakeResponse(path="/plain", status=201),
            FakeResponse(path="/[x]?", status=202),
        ]
    )
    assert getattr(script.take("GET", "https://h/search?q=чай"), "status", None) == 200
    assert script.take("GET", "https://h/search?q=кофе") is None
    assert getattr(script.take("GET", "https://h/plain?page=2"), "status", None) == 201
    assert getattr(script.take("GET", "/[x]?"), "status", None) == 202  # no glob but `*`
    assert script.take("GET", "/x") is None


def test_overrides_and_the_external_url_both_ways() -> None:
    transcript = load(HERE / "external-save.jsonl")
    document = agent_document(transcript, HERE, "http://127.0.0.1:5000/")
    assert document["variables"]["api"] == "http://127.0.0.1:5000"
    assert document["variables"]["customer_id"] == "c-17"  # not overridden: the agent's own
    assert with_external({"a": ["{{external}}/x", 1]}, "http://h") == {"a": ["http://h/x", 1]}
    assert masked("see http://h/x and http://h", "http://h/") == "see {{external}}/x and {{external}}"


def test_a_customer_lines_attachment_block_is_files_to_attach() -> None:
    url = "https://x.omnidesk.ru/attachment/download/chat/h/1_file_0.jpg"
    said = customer_said(f"Мой паспорт \n—————\nВложенные файлы:\n{url}\n")
    assert said == Said("Мой паспорт", [url])
    assert said.files() == [("1_file_0.jpg", url.encode())]
    assert said.text == f"Мой паспорт\n—————\nВложенные файлы:\n{url}"  # as dialog rebuilds it
    assert customer_said(" просто текст ") == Said(" просто текст ", [])  # sent as written
    # The sandbox's url of an uploaded file is compared as the transcript's.
    produced = "http://127.0.0.1:9/attachment/download/chat/ab12/200000008_file_0.jpg"
    assert masked(f"Файл: {produced}", "http://h", {produced: url}) == f"Файл: {url}"


def test_a_missing_agent_file_is_a_transcript_error(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"omnibot": "transcript@1", "agent": "nowhere.json"}\n', encoding="utf-8")
    with pytest.raises(TranscriptError, match=r"nowhere\.json"):
        agent_document(load(path), tmp_path, "http://h")
