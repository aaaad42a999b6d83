"""Secrets at rest: API keys and webhook secrets encrypted with Fernet (AES-128-CBC + HMAC-SHA256).

`SECRET_KEY` holds one or more Fernet keys separated by commas. The first encrypts; all decrypt,
which is how keys are rotated (see README). Nothing here ever puts a secret into an exception.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from omnibot.shared.errors import OmnibotError


class SecretKeyError(OmnibotError):
    """SECRET_KEY is missing, malformed, or does not decrypt the stored secrets."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        keys = [k.strip() for k in secret_key.split(",") if k.strip()]
        if not keys:
            raise SecretKeyError("SECRET_KEY is empty; generate one with `omnibot secret-key`")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except (ValueError, TypeError):
            raise SecretKeyError(
                "SECRET_KEY is not a valid Fernet key (32 url-safe base64 bytes); "
                "generate one with `omnibot secret-key`"
            ) from None

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a stored secret cannot be decrypted with SECRET_KEY: wrong key, or the key that "
                "encrypted it was removed (keep old keys after the new one while rotating)"
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt a token under the first (newest) key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError("a stored secret cannot be decrypted with SECRET_KEY") from None


def dev_secret_key(data_dir: str) -> str:
    """Development only: a key kept in the data dir, so every local process agrees on it."""
    path = Path(data_dir) / "dev-secret.key"
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 at once: written first and chmodded after, it would be readable by anyone
        # in between. O_EXCL: another process made it first, and theirs is the key.
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(generate_key())
    return path.read_text().strip()


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


def fingerprint(secret: str) -> str:
    """What is stored to recognise a webhook secret without being able to recover it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(given: str, stored_fingerprint: str) -> bool:
    return hmac.compare_digest(fingerprint(given), stored_fingerprint)


def mask(secret: str) -> str:
    """`k-3f…71`: enough to tell keys apart, never enough to use one."""
    if len(secret) <= 8:
        return "…"
    return f"{secret[:4]}…{secret[-2:]}"
