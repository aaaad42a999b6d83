"""Development files and production tokens (issue 10, item 13)."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pytest

from omnibot.shared.crypto import dev_secret_key
from omnibot.shared.devmongo import _locked
from omnibot.shared.settings import SettingsError, load_settings


def test_the_dev_secret_key_is_never_readable_by_others(tmp_path: Path) -> None:
    previous = os.umask(0)  # the worst case: files would be created 0666
    try:
        opened: list[int] = []
        real_open = os.open

        def watching_open(path: str, flags: int, mode: int = 0o777, *args: object) -> int:
            opened.append(mode)
            return real_open(path, flags, mode)

        os.open = watching_open  # type: ignore[assignment]
        try:
            key = dev_secret_key(str(tmp_path / "data"))
        finally:
            os.open = real_open
    finally:
        os.umask(previous)
    assert opened == [0o600]  # created with that mode, not chmodded after being written
    assert stat.S_IMODE((tmp_path / "data" / "dev-secret.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert dev_secret_key(str(tmp_path / "data")) == key


def test_the_local_database_directory_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    with _locked(data):
        pass
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


PRODUCTION = {"OMNIBOT_ENV": "production", "MONGODB_URL": "mongodb://db", "SECRET_KEY": "k"}


@pytest.mark.parametrize("token", ["a" * 24, "ab" * 16, "0123456789" * 3])
def test_production_refuses_a_guessable_admin_token(token: str) -> None:
    with pytest.raises(SettingsError, match=r"ADMIN_TOKEN: too guessable.*token_urlsafe"):
        load_settings({**PRODUCTION, "ADMIN_TOKEN": token})


def test_production_accepts_a_generated_admin_token() -> None:
    settings = load_settings({**PRODUCTION, "ADMIN_TOKEN": secrets.token_urlsafe(32)})
    assert settings.is_production
