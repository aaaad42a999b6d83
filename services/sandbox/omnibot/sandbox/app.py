"""Composition root of the Omnidesk sandbox: builds the aiohttp application and serves it.

`build_app` wires the state, the rule runner (opened and closed with the app), the Omnidesk API,
the control API and the playground page; `run_sandbox` serves it until cancelled. Tests use
`build_app` in process; `omnibot sandbox` and docker compose use `run_sandbox`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from omnibot.sandbox.api import OmnideskApi
from omnibot.sandbox.control import SandboxControl
from omnibot.sandbox.gate import OmnideskGate
from omnibot.sandbox.playground.routes import Playground
from omnibot.sandbox.records import MAX_MESSAGE_FILES_BYTES
from omnibot.sandbox.rules import RuleRunner
from omnibot.sandbox.state import SandboxState

log = logging.getLogger(__name__)

SANDBOX_STATE: web.AppKey[SandboxState] = web.AppKey("sandbox_state", SandboxState)
RULE_RUNNER: web.AppKey[RuleRunner] = web.AppKey("sandbox_rule_runner", RuleRunner)

# JSON bodies may carry base64 files (customer messages): 50 MB of files is ~67 MB of base64.
# Multipart uploads are streamed and limited per file instead.
CLIENT_MAX_SIZE = 2 * MAX_MESSAGE_FILES_BYTES


async def _rule_runner_ctx(app: web.Application) -> AsyncIterator[None]:
    runner = app[RULE_RUNNER]
    await runner.start()
    yield
    await runner.close()


def build_app(state: SandboxState | None = None) -> web.Application:
    """The sandbox as an aiohttp application; its state is `app[SANDBOX_STATE]`."""
    state = state if state is not None else SandboxState()
    rules = RuleRunner(state)
    gate = OmnideskGate(state)
    omnidesk = OmnideskApi(state, rules)
    control = SandboxControl(state, rules)
    playground = Playground(state, rules)
    # Each middleware only acts on its own side (control: /sandbox and the page; the gate: the rest).
    app = web.Application(middlewares=[control.middleware, gate.middleware], client_max_size=CLIENT_MAX_SIZE)
    app[SANDBOX_STATE] = state
    app[RULE_RUNNER] = rules
    app.on_shutdown.append(gate.on_shutdown)
    app.on_shutdown.append(playground.events.on_shutdown)
    app.cleanup_ctx.append(_rule_runner_ctx)
    app.add_routes(omnidesk.routes())
    app.add_routes(control.routes())
    app.add_routes(playground.routes())
    return app


async def run_sandbox(host: str, port: int, state: SandboxState | None = None) -> None:
    """Serve the sandbox on host:port until cancelled."""
    app = build_app(state if state is not None else SandboxState(ids_after=time.time()))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        sandbox = app[SANDBOX_STATE]
        log.info(
            "Omnidesk sandbox on http://%s:%s (the playground page is there; bot staff %s, label %s)",
            host,
            port,
            sandbox.bot_email,
            sandbox.bot_label_id,
        )
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
