"""The canonical spelling of outside ids (case ids, channel ids): one key per case and channel."""

from __future__ import annotations

import pytest

from omnibot.shared.ids import parse_case_id, parse_channel_id


@pytest.mark.parametrize("text", ["1", "2000", "9" * 20])
def test_canonical_case_ids_are_kept(text: str) -> None:
    assert parse_case_id(text) == text


@pytest.mark.parametrize("text", ["", "0", "01", "١", "１", "+1", "-1", " 1", "1 ", "1.0", "9" * 21, "²"])
def test_other_spellings_are_not_case_ids(text: str) -> None:
    assert parse_case_id(text) is None


def test_channel_ids() -> None:
    assert parse_channel_id("12") == 12
    assert parse_channel_id("012") is None
    assert parse_channel_id("１２") is None
    assert parse_channel_id("1" * 13) is None
