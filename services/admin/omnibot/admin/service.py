"""Composition root of the admin service: the admin HTTP API and the web console on ADMIN_HOST:ADMIN_PORT.

Opens MongoDB, checks that SECRET_KEY reads the stored secrets (a wrong key stops the start with a
clear message rather than failing requests later), and serves until told to stop. RabbitMQ is
connected on first use (only dead-letter operations need it). The listener is separate from
ingress's public webhook listener and binds to 127.0.0.1 unless configured otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from pathlib import Path

from omnibot.admin.api import build_app
from omnibot.admin.broker import BrokerLink
from omnibot.admin.console.context import Console
from omnibot.admin.console.routes import mount_console
from omnibot.admin.operations import Management, WebhookProbe
from omnibot.shared.channels import verify_secret_key
from omnibot.shared.crypto import SecretBox, dev_secret_key
from omnibot.shared.http import serve_app
from omnibot.shared.mongo import ensure_indexes, open_client
from omnibot.shared.probes import BOARD
from omnibot.shared.replicas import announced
from omnibot.shared.settings import Settings, SettingsError

log = logging.getLogger(__name__)

DEV_TOKEN_FILE = "dev-admin-token"  # noqa: S105 - a file name, not a token


def admin_token(settings: Settings) -> str:
    """ADMIN_TOKEN; in development without one, a token kept in `<data_dir>/dev-admin-token`."""
    if settings.admin_token:
        return settings.admin_token
    if settings.is_production:  # settings refuse this already; never fall back to a file here
        raise SettingsError("ADMIN_TOKEN: required when OMNIBOT_ENV=production")
    path = Path(settings.data_dir) / DEV_TOKEN_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(32))
    log.warning("ADMIN_TOKEN is not set: the admin API uses the development token in %s", path.resolve())
    return path.read_text().strip()


async def serve_admin(
    settings: Settings,
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
    probe_webhook: WebhookProbe | None = None,
) -> None:
    token = admin_token(settings)
    box = SecretBox(settings.secret_key or dev_secret_key(settings.data_dir))
    async with contextlib.AsyncExitStack() as stack:
        mongo = open_client(settings)
        stack.push_async_callback(mongo.close)
        db = mongo[settings.mongodb_db]
        await ensure_indexes(db)
        await verify_secret_key(db, box)
        broker = BrokerLink(settings, name="omnibot-admin")
        stack.push_async_callback(broker.close)
        management = Management(db, box, settings, probe_webhook=probe_webhook, broker=broker)
        console = Console.build(db, management, box, settings)
        await console.ensure_indexes()
        app = build_app(management, token=token, audit=console.audit)  # logs one line per API request
        mount_console(app, console)
        await serve_app(
            stack,
            app,
            settings.admin_host,
            settings.admin_port,
            shutdown_timeout_s=settings.shutdown_timeout_s,
        )
        log.info("admin API listening on %s:%d", settings.admin_host, settings.admin_port)
        log.info("web console at http://%s:%d/", settings.admin_host, settings.admin_port)
        stack.enter_context(BOARD.registered("admin", lambda: True))  # ready once listening
        await stack.enter_async_context(announced(db, "admin"))
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("admin API stopping")
