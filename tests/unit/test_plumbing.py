"""Pure helpers of the shared package and egress: partitions, backoff, throttle, rendering, secrets."""

import pytest

from omnibot.admin.validation import email_problem, normalise_domain
from omnibot.egress.render import reply_body, same_text, text_to_html
from omnibot.shared.backoff import backoff_delay
from omnibot.shared.crypto import SecretBox, SecretKeyError, fingerprint, generate_key, mask, same_secret
from omnibot.shared.errors import TransientError
from omnibot.shared.omnidesk import Account, list_items
from omnibot.shared.ratelimit import AccountThrottle, header
from omnibot.shared.settings import SettingsError, load_settings
from omnibot.shared.topology import RETRY_TIERS_MS, Topology, partition_of, retry_tier_ms


def test_partition_is_stable_and_spread() -> None:
    assert partition_of("3:12345", 8) == partition_of("3:12345", 8)
    spread = {partition_of(f"1:{i}", 8) for i in range(200)}
    assert spread == set(range(8))


def test_topology_names_carry_the_namespace() -> None:
    topology = Topology.build("t1", 2)
    assert topology.inbound.partition_queues == ["t1.chat.inbound.p0", "t1.chat.inbound.p1"]
    assert topology.outbound.dead == "t1.chat.outbound.dead"
    assert Topology.build("", 1).inbound.name == "chat.inbound"


def test_retry_tier_rounds_up_and_caps() -> None:
    assert retry_tier_ms(0) == RETRY_TIERS_MS[0]
    assert retry_tier_ms(1.5) == 1_500
    assert retry_tier_ms(1.6) == 2_000
    assert retry_tier_ms(37) == 48_000
    # Never more than half again what was wanted (above the smallest tier).
    for wanted_ms in range(300, RETRY_TIERS_MS[-1], 700):
        assert retry_tier_ms(wanted_ms / 1000) <= wanted_ms * 1.5
    assert retry_tier_ms(10_000) == RETRY_TIERS_MS[-1]


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    assert backoff_delay(1, rand=lambda: 1.0) == pytest.approx(0.5)
    assert backoff_delay(3, rand=lambda: 1.0) == pytest.approx(2.0)
    assert backoff_delay(30, rand=lambda: 1.0, cap_s=60) == pytest.approx(60)
    assert backoff_delay(1, rand=lambda: 0.0) == pytest.approx(0.25)
    assert backoff_delay(1, rand=lambda: 0.0, retry_after=17) == 17


async def test_throttle_learns_retry_after_per_account() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    throttle = AccountThrottle(clock=lambda: now[0], sleep=sleep, max_wait_in_place_s=2)
    assert throttle.observe("a", 429, {"Retry_After": "30", "api_calls_left": "0"}) == 30
    with pytest.raises(TransientError) as info:
        await throttle.acquire("a")
    assert info.value.retry_after == pytest.approx(30)
    await throttle.acquire("b")  # another account is not slowed
    assert slept == []
    now[0] += 29
    await throttle.acquire("a")  # one second left: waited in place
    assert slept == [pytest.approx(1)]


async def test_throttle_paces_when_the_budget_is_spent() -> None:
    throttle = AccountThrottle(clock=lambda: 0.0)
    throttle.observe("a", 200, {"rate_limit_per_minute": "60", "api_calls_left": "1"})
    await throttle.acquire("a")
    assert throttle.delay_for("a") == pytest.approx(1.0)


def test_rate_limit_headers_are_found_whatever_their_spelling() -> None:
    assert header({"Api-Calls-Left": "5"}, "api_calls_left") == "5"
    assert header({"RATE_LIMIT_PER_MINUTE": "60"}, "rate_limit_per_minute") == "60"
    assert header({}, "retry_after") is None


def test_html_is_escaped_and_lines_kept() -> None:
    assert text_to_html("a < b\n& c") == "<p>a &lt; b<br>&amp; c</p>"
    assert text_to_html("one\n\ntwo") == "<p>one</p><p>two</p>"
    body = reply_body(7, "<script>")
    assert body == {
        "message": {"staff_id": 7, "content": "<script>", "content_html": "<p>&lt;script&gt;</p>"}
    }


def test_read_back_recognises_our_text() -> None:
    assert same_text("1. A\n2. B", {"content": "1. A 2. B"})
    assert same_text("a < b", {"content": "", "content_html": "<p>a &lt; b</p>"})
    assert not same_text("hello", {"content": "hello there"})


def test_omnidesk_lists_are_keyed_objects() -> None:
    body = {"1": {"staff": {"staff_id": 2}}, "0": {"staff": {"staff_id": 1}}, "total_count": 2}
    assert [s["staff_id"] for s in list_items(body, "staff")] == [1, 2]


def test_account_repr_hides_the_key() -> None:
    assert "k-secret" not in repr(Account("https://x.omnidesk.ru", "bot@x.ru", "k-secret"))


def test_secrets_round_trip_rotate_and_refuse_wrong_keys() -> None:
    old, new = generate_key(), generate_key()
    token = SecretBox(old).encrypt("api-key-1")
    rotating = SecretBox(f"{new},{old}")
    assert rotating.decrypt(token) == "api-key-1"
    assert SecretBox(new).decrypt(rotating.rotate(token)) == "api-key-1"
    with pytest.raises(SecretKeyError) as info:
        SecretBox(new).decrypt(token)
    assert "api-key-1" not in str(info.value)
    with pytest.raises(SecretKeyError):
        SecretBox("not-a-key")


def test_webhook_secret_fingerprints_and_masks() -> None:
    assert same_secret("s3cr3t", fingerprint("s3cr3t"))
    assert not same_secret("s3cr3x", fingerprint("s3cr3t"))
    assert mask("k-3f0000000071") == "k-3f…71"
    assert mask("short") == "…"


def test_settings_from_environment_and_their_errors() -> None:
    settings = load_settings(
        {"INGRESS_PORT": "9000", "OMNIDESK_ALLOW_HTTP": "true", "OMNIBOT_ENV": "development"}
    )
    assert settings.ingress_port == 9000
    assert settings.omnidesk_allow_http is True
    with pytest.raises(SettingsError, match="INGRESS_PORT"):
        load_settings({"INGRESS_PORT": "eighty"})
    with pytest.raises(SettingsError, match="MONGODB_URL"):
        load_settings({"OMNIBOT_ENV": "production"})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://Test-RU.omnidesk.ru/", "https://test-ru.omnidesk.ru"),
        ("http://127.0.0.1:8090", "http://127.0.0.1:8090"),
    ],
)
def test_domains_are_normalised(given: str, expected: str) -> None:
    assert normalise_domain(given, allow_http=True) == (expected, None)


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("test.omnidesk.ru", "http(s) URL"),
        ("http://x.omnidesk.ru", "https"),
        ("https://u:p@x.omnidesk.ru", "credentials"),
        ("https://x.omnidesk.ru/api", "without path"),
        ("https://x.omnidesk.ru?a=1", "without path"),
    ],
)
def test_bad_domains_are_explained(given: str, fragment: str) -> None:
    normalised, problem = normalise_domain(given, allow_http=False)
    assert normalised is None
    assert problem is not None and fragment in problem


def test_emails() -> None:
    assert email_problem("bot@x.ru") is None
    assert email_problem("bot") is not None


def test_amqp_url_may_name_several_nodes() -> None:
    from omnibot.shared.amqp_connection import broker_urls, redacted

    assert broker_urls("amqp://u:p@a:5672/vh, amqp://u:p@b:5672/vh,") == [
        "amqp://u:p@a:5672/vh",
        "amqp://u:p@b:5672/vh",
    ]
    assert redacted("amqp://u:secret@a:5672/vh") == "amqp://u:******@a:5672/vh"
    with pytest.raises(SettingsError, match="AMQP_URL"):
        load_settings({"AMQP_URL": "amqp://a/,http://b/"})
    with pytest.raises(SettingsError, match="AMQP_URL"):
        load_settings({"AMQP_URL": " , "})


def test_quorum_queue_arguments() -> None:
    from omnibot.shared.topology import DELIVERY_LIMIT, queue_arguments

    stage = Topology.build("t", 2).inbound
    assert queue_arguments("partition", stage, "quorum") == {
        "x-queue-type": "quorum",
        "x-single-active-consumer": True,
        "x-dead-letter-exchange": "t.chat.inbound.dead",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert queue_arguments("retry", stage, "classic", tier_ms=250) == {
        "x-message-ttl": 250,
        "x-dead-letter-exchange": "t.chat.inbound",
    }
    assert queue_arguments("dead", stage, "quorum") == {"x-queue-type": "quorum"}
