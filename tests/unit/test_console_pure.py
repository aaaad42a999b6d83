"""The console's pure parts: the sign-in throttle's policy, language choice, the Russian catalog's coverage,
the sealed webhook reservation, and sorting refusals onto form fields."""

from __future__ import annotations

import re
from pathlib import Path

from omnibot.admin.console import i18n, reservation
from omnibot.admin.console.forms import CHANNEL_FIELDS, ChannelForm, by_field
from omnibot.admin.console.render import TEMPLATES
from omnibot.admin.console.throttle import FREE_FAILURES, MAX_DELAY_S, WINDOW_S, wait_for
from omnibot.shared.crypto import SecretBox, generate_key


def test_throttle_policy_waits_after_the_free_failures_doubling_up_to_the_cap() -> None:
    # The counting itself (per account and address, shared by replicas) is in MongoDB:
    # tests/integration/test_admin_throttle.py.
    assert wait_for(FREE_FAILURES - 1, 100.0, 100.0) == 0
    assert wait_for(FREE_FAILURES, 100.0, 101.0) == 1.0  # 2 s after the last failure
    assert wait_for(FREE_FAILURES + 1, 100.0, 101.0) == 3.0
    assert wait_for(FREE_FAILURES + 30, 100.0, 100.0) == MAX_DELAY_S
    assert wait_for(FREE_FAILURES + 30, 100.0, 100.0 + WINDOW_S + 1) == 0  # forgotten after the window


def test_language_from_cookie_then_accept_language() -> None:
    assert i18n.choose_language(None, "ru-RU,ru;q=0.9,en-US;q=0.8") == "ru"
    assert i18n.choose_language(None, "de-DE,en;q=0.5,ru;q=0.4") == "en"
    assert i18n.choose_language(None, "de, fr") == "en"
    assert i18n.choose_language("en", "ru") == "en"
    assert i18n.choose_language("xx", "ru;q=0.2") == "ru"


def test_every_text_of_the_templates_has_a_russian_entry() -> None:
    pattern = re.compile(r"""_\(\s*(['"])(.+?)\1""")
    texts = {
        m.group(2) for path in Path(TEMPLATES).glob("*.html") for m in pattern.finditer(path.read_text())
    }
    assert texts, "no texts found"
    missing = sorted(t for t in texts if t not in i18n.RU)
    assert missing == []


def test_reservation_is_sealed_and_expires() -> None:
    box = SecretBox(generate_key())
    sealed = reservation.seal(box, reservation.Reservation(channel_id=7, secret="s3cr3t", issued_at=1000.0))
    assert "s3cr3t" not in sealed
    opened = reservation.unseal(box, sealed, now=1000.0 + 60)
    assert opened is not None and (opened.channel_id, opened.secret) == (7, "s3cr3t")
    assert reservation.unseal(box, sealed, now=1000.0 + reservation.MAX_AGE_S + 1) is None
    assert reservation.unseal(SecretBox(generate_key()), sealed, now=1001.0) is None
    assert reservation.unseal(box, sealed[:-4] + "AAAA", now=1001.0) is None


def test_refusals_land_on_their_fields() -> None:
    problems = by_field(
        [
            "domain: must use https",
            "email: must be an e-mail address",
            "bot_label_id: must be a positive id",
            "x",
        ],
        CHANNEL_FIELDS,
    )
    assert problems.fields == {
        "domain": ["must use https"],
        "email": ["must be an e-mail address"],
        "bot_label": ["must be a positive id"],
    }
    assert problems.general == ["x"]
    assert ChannelForm(bot_label="123").bot_label_fields() == (123, "", None)
    assert ChannelForm(bot_label="На боте").bot_label_fields() == (None, "На боте", None)
    assert ChannelForm(bot_label="").bot_label_fields() == (None, "", None)
