"""The command line's pure parts: argument parsing (usage errors exit 2) and the readable output."""

from __future__ import annotations

from typing import Any

import pytest

from omnibot.launcher.cli import build_parser, render


def parse(*argv: str) -> object:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["channel"],
        ["channel", "create", "--domain", "https://a.omnidesk.ru"],
        ["channel", "show"],
        ["channel", "show", "x"],
        ["channel", "update", "1", "--bot-label-id", "3", "--no-bot-label"],
        ["agent", "publish", "a", "--version", "0"],
        ["chat", "show", "1"],
        ["chat", "list", "1", "--since", "last tuesday"],
        ["dlq", "replay"],
        ["dlq", "replay", "--all", "--id", "a"],
        ["dlq", "list", "--stage", "sideways"],
        ["run", "nothing"],
        ["secrets"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_json_is_accepted_before_and_after_the_command() -> None:
    assert parse("--json", "channel", "list").json is True  # type: ignore[attr-defined]
    assert parse("channel", "list", "--json").json is True  # type: ignore[attr-defined]
    assert parse("channel", "list").json is False  # type: ignore[attr-defined]


def test_arguments_of_the_management_commands() -> None:
    args = parse("dlq", "replay", "--id", "a", "b", "--id", "c", "--stage", "outbound")
    assert (args.ids, args.all, args.stage) == (["a", "b", "c"], False, "outbound")  # type: ignore[attr-defined]
    args = parse("chat", "list", "3", "--owner", "operator", "--since", "1970-01-01T00:01:40Z")
    assert (args.channel, args.owner, args.since, args.limit, args.offset) == (3, "operator", 100.0, 100, 0)  # type: ignore[attr-defined]
    assert parse("run", "all").service == "all"  # type: ignore[attr-defined]
    assert parse("run", "admin").service == "admin"  # type: ignore[attr-defined]
    args = parse("channel", "update", "4", "--no-transfer-group", "--transfer-status", "")
    assert (args.no_transfer_group, args.transfer_status, args.title) == (True, "", None)  # type: ignore[attr-defined]


def test_a_page_is_a_table_with_a_pointer_to_the_next() -> None:
    page: dict[str, Any] = {
        "items": [
            {
                "id": 1,
                "title": "Support",
                "domain": "https://a.omnidesk.ru",
                "email": "b@a.ru",
                "agent": "x",
                "active": True,
            },
            {
                "id": 12,
                "title": "Sales",
                "domain": "https://b.omnidesk.ru",
                "email": "b@b.ru",
                "agent": "y",
                "active": False,
            },
        ],
        "total": 5,
        "limit": 2,
        "offset": 0,
        "next_offset": 2,
    }
    assert render(page, "channels").splitlines() == [
        "id  title    domain                 email   agent  active",
        "1   Support  https://a.omnidesk.ru  b@a.ru  x      yes",
        "12  Sales    https://b.omnidesk.ru  b@b.ru  y      no",
        "(1-2 of 5; next: --offset 2)",
    ]
    assert render({**page, "items": [], "total": 0, "next_offset": None}, "channels") == "(none)"
    single = {**page, "items": page["items"][:1], "total": 1, "next_offset": None}
    assert "of 1" not in render(single, "channels")


def test_a_channel_with_checks_reads_as_fields_and_verdicts() -> None:
    channel = {
        "id": 3,
        "title": "Support",
        "active": False,
        "bot_label_id": None,
        "checks": [
            {"name": "agent", "passed": True, "detail": "agent a version 2 is published"},
            {"name": "omnidesk", "passed": False, "detail": "staff bot@x.ru not found in Omnidesk"},
        ],
    }
    assert render(channel, None).splitlines() == [
        "id            3",
        "title         Support",
        "active        no",
        "bot_label_id  -",
        "  passed  agent: agent a version 2 is published",
        "  FAILED  omnidesk: staff bot@x.ru not found in Omnidesk",
    ]


def test_a_chat_reads_with_its_variables_and_transcript() -> None:
    chat = {
        "chat_id": "77",
        "owner": "bot",
        "variables": {"order_id": "42", "n": 3},
        "transcript": [
            {"role": "customer", "text": "Привет", "at": "2026-05-01T10:00:01Z"},
            {"role": "bot", "text": "Здравствуйте!\nЧем помочь?", "at": "2026-05-01T10:00:02Z"},
        ],
    }
    assert render(chat, None).splitlines() == [
        "chat_id  77",
        "owner    bot",
        "variables:",
        "  n         3",
        '  order_id  "42"',
        "transcript:",
        "  10:00:01  customer  Привет",
        "  10:00:02  bot       Здравствуйте!",
        "              Чем помочь?",
    ]
