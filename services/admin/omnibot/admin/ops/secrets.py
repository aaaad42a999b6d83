"""Secrets at rest: re-encrypting every channel's secrets under the first key of SECRET_KEY."""

from __future__ import annotations

from omnibot.admin.ops.context import Context, Refused
from omnibot.admin.schemas import SecretsRotated
from omnibot.shared.errors import TransientError


class SecretOperations:
    def __init__(self, context: Context) -> None:
        self._ctx = context

    async def rotate_secrets(self) -> SecretsRotated:
        """Re-encrypt every channel's secrets under the first key of SECRET_KEY."""
        try:
            count = await self._ctx.store.rotate_channel_secrets(self._ctx.secrets)
        except TransientError as exc:
            raise Refused("conflict", [str(exc)]) from None
        return SecretsRotated(channels=count)
