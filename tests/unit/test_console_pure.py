"""The console's pure parts: sign-in throttling, language choice, the Russian catalog's coverage,
the sealed webhook reservation, and sorting refusals onto form fields."""

from __future__ import annotations

import re
from pathlib import Path

from omnibot.admin.console import i18n, reservation
from omnibot.admin.console.forms import CHANNEL_FIELDS, ChannelForm, by_field
from omnibot.admin.console.render import TEMPLATES
from omnibot.admin.console.throttle import FREE_FAILURES, MAX_DELAY_S, SignInThrottle
from omnibot.shared.crypto import SecretBox, generate_key


def test_throttle_slows_an_account_and_an_address_down() -> None:
    throttle = SignInThrottle()
    for n in range(FREE_FAILURES):
        assert throttle.wait_s("a@x.ru", "10.0.0.1", 100.0 + n) == 0
        throttle.failed("a@x.ru", "10.0.0.1", 100.0 + n)
    assert throttle.wait_s("a@x.ru", "10.0.0.9", 102.5) > 0  # the account, from anywhere
    assert throttle.wait_s("b@x.ru", "10.0.0.1", 102.5) > 0  # the address, for any account
    assert throttle.wait_s("b@x.ru", "10.0.0.9", 102.5) == 0
    assert throttle.wait_s("a@x.ru", "10.0.0.9", 102.0 + 2.0) == 0  # 2 s after the last failure
    for _ in range(30):
        throttle.failed("a@x.ru", "10.0.0.1", 200.0)
    assert throttle.wait_s("a@x.ru", "10.0.0.9", 200.0) == MAX_DELAY_S
    throttle.succeeded("a@x.ru")
    assert throttle.wait_s("a@x.ru", "10.0.0.9", 200.0) == 0
    assert throttle.wait_s("c@x.ru", "10.0.0.1", 200.0) > 0  # the address stays slowed


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
