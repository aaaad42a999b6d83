"""Free-text matching and intents: stems, typos, word order, thresholds, ambiguity, speed of look-up."""

from __future__ import annotations

import pytest

from omnibot.agents.intents import IntentModel
from omnibot.agents.matching import PhraseIndex, stems, words

MENU = PhraseIndex([["Статус заказа", "где мой заказ"], ["Оператор", "позвать человека"], ["Возврат"]])


def test_normalisation_drops_case_punctuation_and_yo() -> None:
    assert words("Ещё, ОПЕРАТОР!!! ну-ка") == ["еще", "оператор", "ну", "ка"]
    assert stems("оператора Оператор operators") == ("оператор", "oper")


@pytest.mark.parametrize(
    ("reply", "button"),
    [
        ("оператора позовите", 1),  # word forms and order
        ("ОПЕРАТОР!!!", 1),
        ("Опреатор", 1),  # two letters swapped
        ("операторр", 1),  # one letter extra
        ("хочу узнать, где мой заказ", 0),  # a synonym, with filler words
        ("где заказ мой?", 0),
        ("возврат денег", 2),
        ("статус", 0),  # one word of a two-word title is enough at 0.7
    ],
)
def test_replies_choose_their_button(reply: str, button: int) -> None:
    found = MENU.match(reply, 0.7)
    assert found.winner == button, found
    assert found.score >= 0.7


def test_unrelated_and_ambiguous_replies_choose_nothing() -> None:
    assert MENU.match("привет", 0.7).winner is None
    both = MENU.match("оператор или возврат", 0.7)
    assert both.winner is None
    assert both.ambiguous


def test_threshold_decides() -> None:
    assert MENU.match("статус", 0.7).winner == 0
    assert MENU.match("статус", 0.8).winner is None


def test_short_words_get_no_typo_tolerance() -> None:
    index = PhraseIndex([["да"], ["нет"]])
    assert index.match("да", 0.7).winner == 0
    assert index.match("до", 0.7).winner is None


def test_scores_are_ranked_and_complete() -> None:
    found = MENU.match("оператор", 0.7, complete=True)
    assert found.scores[0].key == 1
    assert sorted(s.key for s in found.scores) == [0, 1, 2]


INTENTS = IntentModel(
    [
        ("order_status", ["где мой заказ", "статус заказа", "когда привезут"]),
        ("refund", ["верните деньги", "хочу вернуть товар"]),
    ]
)


def test_intents_classify_with_confidence() -> None:
    found = INTENTS.classify("Подскажите, где мой заказ?", 0.6, complete=True)
    assert found.intent == "order_status"
    assert found.confidence >= 0.9
    assert [s.name for s in found.scores] == ["order_status", "refund"]
    assert INTENTS.classify("верните мои деньги", 0.6).intent == "refund"
    assert INTENTS.classify("когда привизут", 0.6).intent == "order_status"  # a typo
    assert INTENTS.classify("какая погода", 0.6).intent is None


def test_overlapping_examples_are_found() -> None:
    model = IntentModel([("a", ["статус заказа"]), ("b", ["заказа статус", "другое"])])
    assert ("a", "b", "статус заказа") in model.overlaps(0.6)
    assert INTENTS.overlaps(0.6) == []
