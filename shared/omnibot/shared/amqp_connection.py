"""The AMQP connection of every omnibot process: robust, and failing over between broker nodes.

`AMQP_URL` may hold several comma-separated URLs, one per RabbitMQ node
(`amqp://u:p@rabbit-0:5672/vh,amqp://u:p@rabbit-1:5672/vh`). They are tried in turn on every
connection attempt, the first one and every reconnect after a lost connection, as RabbitMQ's
clients in other languages do with their address lists: a replica whose node went away (or whose
network path to it broke) reconnects to another node, and aio-pika's robust connection then
restores its channels, QoS, declared queues and consumers there. Quorum queues are reachable from
every node, so nothing else changes.

aio-pika's `RobustConnection` knows one URL and reconnects to it. `FailoverConnection` changes only
which URL an attempt uses: the robust connection starts each attempt by resetting its transport to
None (`__connect_transport`), and that is where the next URL is taken. The locked aio-pika version
is what this relies on; tests/integration/quorum/test_quorum_queues.py and the chaos suite's cluster scenarios
check it.
"""

from __future__ import annotations

import logging
from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from yarl import URL

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
# Pause between reconnect attempts. Short, since the next attempt usually goes to another node;
# aio-pika's default (5 s) would add to every failover.
RECONNECT_INTERVAL_S = 1.0


def broker_urls(amqp_url: str) -> list[str]:
    """The URLs in an `AMQP_URL` (one, or several separated by commas), in order."""
    urls = [part.strip() for part in amqp_url.split(",") if part.strip()]
    if not urls:
        raise ValueError("AMQP_URL: no broker URL given")
    for url in urls:
        if not url.startswith(("amqp://", "amqps://")):
            raise ValueError("AMQP_URL: every URL must start with amqp:// or amqps://")
    return urls


def redacted(url: str | URL) -> str:
    """A URL fit for a log line: the password masked."""
    parsed = URL(str(url))
    return str(parsed.with_password("******")) if parsed.password else str(parsed)


class FailoverConnection(aio_pika.RobustConnection):
    """A robust connection that takes the next of its URLs on every connection attempt."""

    def __init__(self, urls: list[str], first: int = 0, **kwargs: Any) -> None:
        self._urls = [URL(u) for u in urls]
        self._next = first % len(self._urls)
        self._attempts = 0
        super().__init__(self._urls[self._next], **kwargs)
        self._armed = True  # from here on, a transport reset is a connection attempt or a close

    @property
    def transport(self) -> Any:
        return self.__dict__.get("_failover_transport")

    @transport.setter
    def transport(self, value: Any) -> None:
        # Set to None at construction, on close, and at the start of every connection attempt
        # (before the attempt reads `self.url`): the attempt after the first goes one URL further.
        if value is None and self.__dict__.get("_armed") and not self._close_called:
            if self._attempts > 0:
                self._next = (self._next + 1) % len(self._urls)
                self.url = self._urls[self._next]
                log.info("connecting to the broker at %s", redacted(self.url))
            self._attempts += 1
        self.__dict__["_failover_transport"] = value

    @property
    def urls(self) -> list[str]:
        return [str(u) for u in self._urls]


async def connect(
    amqp_url: str, *, name: str, timeout_s: float = CONNECT_TIMEOUT_S
) -> AbstractRobustConnection:
    """Connect to the first broker of `amqp_url` that answers; reconnects go round the others.

    Raises the last error when none answers (a process fails at start rather than waiting).
    """
    urls = broker_urls(amqp_url)
    last: BaseException | None = None
    for first, url in enumerate(urls):
        connection = FailoverConnection(
            urls,
            first,
            client_properties={"connection_name": name},
            reconnect_interval=RECONNECT_INTERVAL_S,
        )
        try:
            await connection.connect(timeout=timeout_s)
        except (ConnectionError, OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
            last = exc
            log.warning("broker %s did not answer: %s", redacted(url), type(exc).__name__)
            await connection.close()
            continue
        if len(urls) > 1:
            log.info("connected to the broker at %s (%d known)", redacted(url), len(urls))
        return connection
    assert last is not None
    raise last
