"""What an operator types in, checked before anything is saved; and the API's route table. Pure."""

from __future__ import annotations

import pytest

from omnibot.admin.api import ENDPOINTS
from omnibot.admin.api.openapi import build_openapi
from omnibot.admin.validation import (
    api_key_problem,
    email_problem,
    normalise_domain,
    page_problems,
    parse_since,
    positive_problem,
    title_problem,
    transfer_status_problem,
)


@pytest.mark.parametrize(
    ("raw", "allow_http", "stored"),
    [
        ("https://Test-RU.omnidesk.ru", False, "https://test-ru.omnidesk.ru"),
        (" https://test-ru.omnidesk.ru/ ", False, "https://test-ru.omnidesk.ru"),
        ("https://support.example.com:8443", False, "https://support.example.com:8443"),
        ("http://127.0.0.1:8090", True, "http://127.0.0.1:8090"),
    ],
)
def test_domains_accepted(raw: str, allow_http: bool, stored: str) -> None:
    assert normalise_domain(raw, allow_http=allow_http) == (stored, None)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            "http://test-ru.omnidesk.ru",
            "domain: must use https (set OMNIDESK_ALLOW_HTTP=true only for a sandbox)",
        ),
        ("test-ru.omnidesk.ru", "domain: must be an http(s) URL like https://example.omnidesk.ru"),
        ("ftp://test-ru.omnidesk.ru", "domain: must be an http(s) URL like https://example.omnidesk.ru"),
        ("https://", "domain: must be an http(s) URL like https://example.omnidesk.ru"),
        ("https://bot:key@test-ru.omnidesk.ru", "domain: must not contain credentials"),
        (
            "https://test-ru.omnidesk.ru/api",
            "domain: must be the account address only, without path, query or fragment",
        ),
        (
            "https://test-ru.omnidesk.ru?x=1",
            "domain: must be the account address only, without path, query or fragment",
        ),
        (
            "https://test-ru.omnidesk.ru#top",
            "domain: must be the account address only, without path, query or fragment",
        ),
        ("https://test-ru.omnidesk.ru:99999", "domain: invalid port"),
        ("https://[::1", "domain: not a URL"),
    ],
)
def test_domains_refused(raw: str, problem: str) -> None:
    assert normalise_domain(raw, allow_http=False) == (None, problem)


def test_field_checks() -> None:
    assert email_problem("bot@acme.ru") is None
    assert email_problem(" bot@acme.ru ") is None
    for bad in ("", "bot", "bot@", "@acme.ru", "bot@acme", "b ot@acme.ru"):
        assert email_problem(bad) == "email: must be an e-mail address", bad
    assert api_key_problem("k") is None
    assert api_key_problem("  ") == "api_key: must not be empty"
    assert title_problem("x" * 201) == "title: at most 200 characters"
    assert positive_problem("bot_label_id", None) is None
    assert positive_problem("bot_label_id", 0) == "bot_label_id: must be a positive id"
    assert transfer_status_problem("") is None
    assert transfer_status_problem("archived") is not None
    assert page_problems(0, -1, max_limit=500) == [
        "limit: must be between 1 and 500",
        "offset: must not be negative",
    ]


@pytest.mark.parametrize(
    ("raw", "ts"),
    [
        ("1714557600", 1714557600.0),
        ("2024-05-01T10:00:00Z", 1714557600.0),
        ("2024-05-01T13:00:00+03:00", 1714557600.0),
        ("2024-05-01T10:00:00", 1714557600.0),
        ("2024-05-01", 1714521600.0),
    ],
)
def test_since_accepts_iso_and_unix_times(raw: str, ts: float) -> None:
    assert parse_since(raw) == (ts, None)


@pytest.mark.parametrize("raw", ["yesterday", "nan", "inf", "2024-13-01"])
def test_since_refuses_other_things(raw: str) -> None:
    value, problem = parse_since(raw)
    assert value is None and problem and problem.startswith("updated_since:")


def test_the_openapi_document_describes_every_endpoint_once() -> None:
    document = build_openapi(ENDPOINTS)
    operations = [(m, p) for p, ops in document["paths"].items() for m in ops]
    assert len(operations) == len(ENDPOINTS) == len(set(operations))
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    schemas = document["components"]["schemas"]
    assert {"ErrorBody", "ChannelView", "ChannelCreate", "ChannelChanges", "ChatView"} <= set(schemas)
    # Secrets are write-only: a channel as answered has a masked key, never an encrypted one.
    assert "api_key_enc" not in schemas["ChannelView"]["properties"]


def test_an_unknown_option_is_refused_without_echoing_its_value(capsys: pytest.CaptureFixture[str]) -> None:
    from omnibot.launcher.cli import main

    secret = "sk-live-0123456789abcdef"
    with pytest.raises(SystemExit) as exited:
        main(["channel", "update", "1", "--llm-api-key", secret, f"--token={secret}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    # argparse takes `--llm-api-key` for `--llm-api-key-stdin` (a prefix): the key is left over.
    assert "unrecognized arguments: --token and 1 value (not shown)" in err
    assert secret not in err
