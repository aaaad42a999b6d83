"""Secrets at rest and the admin service's start: SECRET_KEY checked before serving, key rotation,
the admin token (required in production, a generated file in development).
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from omnibot.admin.operations import Management
from omnibot.admin.service import DEV_TOKEN_FILE, serve_admin
from omnibot.shared.channels import MongoChannelStore, verify_secret_key
from omnibot.shared.crypto import SecretBox, SecretKeyError, generate_key
from omnibot.shared.settings import Settings, SettingsError, load_settings
from omnibot.testkit.ports import free_port
from omnibot.testkit.services import ServiceTask
from tests.harness import FIXTURES

AGENT_FILE = (FIXTURES / "agents" / "pipeline-demo.json").read_bytes()


async def no_probe(url: str) -> str | None:
    return None


async def make_channels(settings: Settings, db: Any, key: str, count: int = 2) -> list[dict[str, Any]]:
    ops = Management(db, SecretBox(key), settings, probe_webhook=no_probe)
    await ops.agents.import_agent(AGENT_FILE, publish=True)
    return [
        msgspec.to_builtins(
            await ops.channels.create_channel(
                domain="https://acme.omnidesk.ru",
                api_key=f"api-key-number-{n}",
                email=f"bot{n}@acme.ru",
                agent="pipeline-demo",
            )
        )
        for n in range(count)
    ]


async def test_verify_secret_key(settings: Settings, db: Any) -> None:
    old, new = generate_key(), generate_key()
    await verify_secret_key(db, SecretBox(new))  # nothing stored yet: any key will do
    channels = await make_channels(settings, db, old)
    await verify_secret_key(db, SecretBox(old))
    await verify_secret_key(db, SecretBox(f"{new},{old}"))
    with pytest.raises(SecretKeyError) as info:
        await verify_secret_key(db, SecretBox(new))
    message = str(info.value)
    assert f"channel {channels[0]['id']}" in message
    assert "SECRET_KEY=new,old" in message
    assert old not in message and new not in message


async def test_rotation_re_encrypts_every_channel_and_keeps_the_webhook_urls(
    settings: Settings, db: Any
) -> None:
    old, new = generate_key(), generate_key()
    before = await make_channels(settings, db, old, count=3)
    both = Management(db, SecretBox(f"{new},{old}"), settings)
    assert msgspec.to_builtins(await both.secrets.rotate_secrets()) == {"channels": 3}
    # The old key is no longer needed; nothing visible changed.
    only_new = Management(db, SecretBox(new), settings)
    await verify_secret_key(db, SecretBox(new))
    after = msgspec.to_builtins(await only_new.channels.list_channels())["items"]
    assert [(c["webhook_url"], c["api_key"]) for c in after] == [
        (c["webhook_url"], c["api_key"]) for c in before
    ]
    with pytest.raises(SecretKeyError):
        await verify_secret_key(db, SecretBox(old))
    stored = await MongoChannelStore(db).all()
    assert [SecretBox(new).decrypt(c.api_key_enc) for c in stored] == [
        f"api-key-number-{n}" for n in range(3)
    ]


async def test_rotation_through_the_api(settings: Settings, db: Any) -> None:
    old, new = generate_key(), generate_key()
    await make_channels(settings, db, old)
    settings = msgspec.structs.replace(
        settings, secret_key=f"{new},{old}", admin_token="t" * 32, admin_port=free_port()
    )
    service = ServiceTask("admin", serve_admin, settings)
    await service.wait_ready()
    try:
        async with (
            aiohttp.ClientSession(headers={"Authorization": "Bearer " + "t" * 32}) as session,
            session.post(f"http://127.0.0.1:{settings.admin_port}/api/v1/secrets/rotate") as response,
        ):
            assert (response.status, await response.json()) == (200, {"channels": 2})
    finally:
        await service.stop()
    await verify_secret_key(db, SecretBox(new))


async def test_the_admin_service_refuses_to_start_with_a_wrong_secret_key(
    settings: Settings, db: Any
) -> None:
    await make_channels(settings, db, settings.secret_key, count=1)
    wrong = msgspec.structs.replace(
        settings, secret_key=generate_key(), admin_token="t" * 32, admin_port=free_port()
    )
    with pytest.raises(SecretKeyError, match="cannot decrypt the secrets stored for channel 1"):
        await ServiceTask("admin", serve_admin, wrong).wait_ready()
    malformed = msgspec.structs.replace(wrong, secret_key="not-a-fernet-key")
    with pytest.raises(SecretKeyError, match="not a valid Fernet key"):
        await ServiceTask("admin", serve_admin, malformed).wait_ready()


async def test_development_generates_an_admin_token_file(
    settings: Settings, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = msgspec.structs.replace(settings, admin_token="", admin_port=free_port())
    tokens = []
    for _ in range(2):
        service = ServiceTask("admin", serve_admin, settings)
        await service.wait_ready()
        try:
            path = Path(settings.data_dir) / DEV_TOKEN_FILE
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            token = path.read_text().strip()
            assert len(token) >= 32
            tokens.append(token)
            base = f"http://127.0.0.1:{settings.admin_port}/api/v1/channels"
            async with aiohttp.ClientSession() as session:
                async with session.get(base, headers={"Authorization": f"Bearer {token}"}) as response:
                    assert response.status == 200
                async with session.get(base) as response:
                    assert response.status == 401
        finally:
            await service.stop()
    assert tokens[0] == tokens[1]  # kept: every local process agrees on it
    assert str(path.resolve()) in caplog.text
    assert tokens[0] not in caplog.text


def test_production_refuses_to_start_without_an_admin_token() -> None:
    environ = {"OMNIBOT_ENV": "production", "MONGODB_URL": "mongodb://db", "SECRET_KEY": generate_key()}
    with pytest.raises(SettingsError, match="ADMIN_TOKEN"):
        load_settings(environ)
    with pytest.raises(SettingsError, match="ADMIN_TOKEN"):
        load_settings({**environ, "ADMIN_TOKEN": "short"})
    # One letter repeated is refused too (issue 10: too guessable); a generated token is accepted.
    with pytest.raises(SettingsError, match="ADMIN_TOKEN"):
        load_settings({**environ, "ADMIN_TOKEN": "x" * 24})
    token = "Zk3v9QaP2mL8rT5wY1nB6cD4eF7gH0jK"
    assert load_settings({**environ, "ADMIN_TOKEN": token}).admin_token == token
