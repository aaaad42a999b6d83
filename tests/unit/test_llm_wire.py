"""The pure chat-completions parts of the llm slot: the request body and reading answers."""

from __future__ import annotations

from omnibot.agents.llm import (
    LLMAnswer,
    LLMFailure,
    build_body,
    build_messages,
    completions_url,
    parse_response,
)


def test_request_body() -> None:
    messages = build_messages(
        "Ты оператор", [("user", "привет"), ("assistant", "Здравствуйте"), ("user", "")], "где заказ?"
    )
    body = build_body("gpt-test", messages, 300)
    assert body == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "Ты оператор"},
            {"role": "user", "content": "привет"},
            {"role": "assistant", "content": "Здравствуйте"},
            {"role": "user", "content": "где заказ?"},
        ],
        "max_tokens": 300,
        "stream": False,
    }
    assert completions_url("http://h/v1/") == "http://h/v1/chat/completions"
    assert build_messages(" ", [], "x")[0].role == "user"


def test_answer_and_usage() -> None:
    body = {
        "choices": [{"message": {"role": "assistant", "content": " Ответ "}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
    assert parse_response(200, body) == LLMAnswer("Ответ", 12, 3)


def test_failures() -> None:
    refused = {"choices": [{"message": {"content": None, "refusal": "no"}, "finish_reason": "stop"}]}
    assert parse_response(200, refused) == LLMFailure("the model refused")
    filtered = {"choices": [{"message": {"content": "x"}, "finish_reason": "content_filter"}]}
    assert parse_response(200, filtered) == LLMFailure("the model refused")
    assert parse_response(200, {"choices": []}) == LLMFailure("no choices in the response")
    assert parse_response(200, {"choices": [{"message": {"content": "  "}}]}) == LLMFailure("empty answer")
    assert isinstance(parse_response(200, "html"), LLMFailure)
    assert parse_response(429, {"error": {"message": "slow down"}}) == LLMFailure("HTTP 429: slow down")
    assert parse_response(None, None, "timed out after 20s") == LLMFailure("timed out after 20s")
