"""Configuration from the environment: one frozen Struct, validated at start-up (fail fast).

Every variable is documented in the README with its default. Tests build `Settings` directly.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from typing import Literal

import msgspec

from omnibot.shared.amqp_connection import broker_urls


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    env: Literal["development", "production"] = "development"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefix for every exchange and queue name, so test runs never see each other's messages.
    amqp_namespace: str = ""
    # "quorum" (replicated; the default) or "classic" (earlier releases' queues, see the README).
    amqp_queue_type: Literal["quorum", "classic"] = "quorum"
    mongodb_url: str = ""  # empty: development starts a local MongoDB-protocol server
    mongodb_db: str = "omnibot"
    public_base_url: str = "http://127.0.0.1:8080"
    ingress_host: str = "0.0.0.0"
    ingress_port: int = 8080
    admin_host: str = "127.0.0.1"
    admin_port: int = 8081
    admin_token: str = ""
    secret_key: str = ""
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    chat_partitions: int = 8
    dialog_prefetch: int = 32
    egress_prefetch: int = 32
    max_body_bytes: int = 1024 * 1024
    # Slow clients (README, "Security"): a request's headers, and its body, must arrive within
    # these; connections past the caps are closed at once (0: per address off; total from ulimit).
    ingress_header_timeout_s: float = 10.0
    ingress_body_timeout_s: float = 10.0
    ingress_max_connections_per_address: int = 256
    ingress_max_connections: int = 0
    omnidesk_allow_http: bool = False
    omnidesk_timeout_s: float = 10.0
    # How dialog tells a new customer message from a repeated or echoed webhook (see README):
    # "confirm" reads the case's messages from Omnidesk; "webhook" trusts the webhook's text and
    # drops one whose content was already taken within `dedup_window_s`.
    inbound_mode: Literal["confirm", "webhook"] = "confirm"
    dedup_window_s: float = 30.0
    # When the case is handed back to the bot: start the agent afresh, or resume where it stopped.
    return_to_bot: Literal["restart", "resume"] = "restart"
    external_request_allow_networks: str = ""
    # The language model of `llm` slots (an OpenAI-compatible chat-completions API); a channel may
    # name its own. The key is a secret: never logged.
    llm_base_url: str = ""
    llm_api_key: str = ""
    llm_model: str = ""
    # The monitoring listener (/metrics, /healthz, /readyz) of every service process: 0 takes a
    # free port (logged), "off" serves none. Never the ingress port: that one faces the internet.
    metrics_host: str = "0.0.0.0"
    metrics_port: int | Literal["off"] = 9090
    # false: no metric is recorded and /metrics answers 404 (/healthz and /readyz stay).
    metrics_enabled: bool = True
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = 8090
    shutdown_timeout_s: float = 20.0
    data_dir: str = ".omnibot"  # development only: local MongoDB-protocol server data, dev secret key

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def to_env(self) -> dict[str, str]:
        """The environment variables `load_settings` reads these settings back from (for a child
        process). Secrets included: never log it."""
        return {env_name(field): _env_value(getattr(self, field)) for field in self.__struct_fields__}


def _env_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


_PREFIX_FREE = {
    "env": "OMNIBOT_ENV",
    "data_dir": "OMNIBOT_DATA_DIR",
}


def env_name(field: str) -> str:
    return _PREFIX_FREE.get(field, field.upper())


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from environment variables (`AMQP_URL`, `INGRESS_PORT`, ...)."""
    environ = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    for field in Settings.__struct_fields__:
        name = env_name(field)
        if name in environ and environ[name] != "":
            raw[field] = environ[name]
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(str(exc))) from None
    _check(settings)
    return settings


def _explain(message: str) -> str:
    # msgspec says "... - at `$.ingress_port`"; name the environment variable instead.
    if "`$." in message:
        field = message.rsplit("`$.", 1)[1].rstrip("`")
        return f"{env_name(field)}: {message.split(' - at ')[0]}"
    return message


MIN_ADMIN_TOKEN_BITS = 100


def token_entropy_bits(token: str) -> float:
    """A cautious estimate of a token's entropy: its length times the Shannon entropy of its own
    characters. One letter repeated scores 0; `secrets.token_urlsafe(32)` about 200."""
    if not token:
        return 0.0
    counts = Counter(token)
    per_char = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
    return per_char * len(token)


def _check(settings: Settings) -> None:
    if settings.chat_partitions < 1 or settings.chat_partitions > 1024:
        raise SettingsError("CHAT_PARTITIONS: must be between 1 and 1024")
    for name in ("dialog_prefetch", "egress_prefetch"):
        if getattr(settings, name) < 1:
            raise SettingsError(f"{env_name(name)}: must be at least 1")
    try:
        broker_urls(settings.amqp_url)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    for name in ("ingress_header_timeout_s", "ingress_body_timeout_s"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{env_name(name)}: must be more than 0")
    if not settings.public_base_url.startswith(("http://", "https://")):
        raise SettingsError("PUBLIC_BASE_URL: must start with http:// or https://")
    if settings.is_production:
        if not settings.mongodb_url:
            raise SettingsError("MONGODB_URL: required when OMNIBOT_ENV=production")
        if not settings.secret_key:
            raise SettingsError("SECRET_KEY: required when OMNIBOT_ENV=production")
        if not settings.admin_token or len(settings.admin_token) < 24:
            raise SettingsError("ADMIN_TOKEN: required (24+ characters) when OMNIBOT_ENV=production")
        if token_entropy_bits(settings.admin_token) < MIN_ADMIN_TOKEN_BITS:
            raise SettingsError(
                f"ADMIN_TOKEN: too guessable (about {token_entropy_bits(settings.admin_token):.0f} bits, "
                f"at least {MIN_ADMIN_TOKEN_BITS} needed); generate one with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
