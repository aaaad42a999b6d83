"""File downloads for egress: fetches the file an action attaches, through the safe HTTP client.

The url comes from an agent (or a customer's words), so the same network policy and redirect
checks apply as to agents' requests. A failure is classified for the consumer: PermanentError
when the file cannot be had (refused, missing, over the size limit), TransientError when trying
again may help (timeouts, 5xx, connection failures).
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict

from omnibot.shared.errors import PermanentError, TransientError
from omnibot.shared.net.client import CHUNK_BYTES, RequestFailed, SafeHttpClient, format_size, redact_text
from omnibot.shared.net.policy import AddressRefusedError, NetworkPolicy


class _ErrorStatus(Exception):
    """The file url answered an error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the file url answered {status}")
        self.status = status


class FileDownloader:
    """Downloads files for egress to attach: (content, content type), under the network policy."""

    def __init__(
        self, policy: NetworkPolicy, *, timeout_s: float = 120.0, resolver: AbstractResolver | None = None
    ) -> None:
        self._client = SafeHttpClient(policy, resolver=resolver)
        self._timeout_s = timeout_s

    async def start(self) -> None:
        await self._client.start()

    async def close(self) -> None:
        await self._client.close()

    async def download(self, url: str, max_bytes: int) -> tuple[bytes, str]:
        if not self._client.started:
            raise TransientError("file downloads are not available (fetcher not started)")

        async def read(resp: aiohttp.ClientResponse) -> tuple[bytes, str]:
            if resp.status >= 400:
                raise _ErrorStatus(resp.status)
            declared = resp.content_length
            if declared is not None and declared > max_bytes:
                raise RequestFailed(f"file over {format_size(max_bytes)} (Omnidesk's limit)")
            buffer = bytearray()
            async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                buffer += chunk
                if len(buffer) > max_bytes:
                    raise RequestFailed(f"file over {format_size(max_bytes)} (Omnidesk's limit)")
            return bytes(buffer), resp.content_type

        shown = redact_text(url)
        try:
            target = self._client.parse_url(url)
            async with asyncio.timeout(self._timeout_s):
                return await self._client.request("GET", target, CIMultiDict(), None, read)
        except RequestFailed as exc:
            raise PermanentError(f"cannot attach {shown}: {exc}") from None
        except _ErrorStatus as exc:
            if exc.status >= 500:
                raise TransientError(f"downloading {shown}: {exc}") from None
            raise PermanentError(f"cannot attach {shown}: {exc}") from None
        except TimeoutError:
            raise TransientError(f"downloading {shown} timed out after {self._timeout_s:.0f} s") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefusedError):
                raise PermanentError(f"cannot attach {shown}: {exc.os_error}") from None
            raise TransientError(f"cannot connect to download {shown}") from None
        except aiohttp.ClientError as exc:
            raise TransientError(f"downloading {shown} failed: {type(exc).__name__}") from None
