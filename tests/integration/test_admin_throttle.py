"""The sign-in throttle counts in MongoDB: per account and per address, the same for every admin
replica (two admin services sharing one database here), forgotten after its window."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import msgspec
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.admin.console.throttle import FREE_FAILURES, MAX_DELAY_S, WINDOW_S, MongoSignInThrottle
from omnibot.admin.service import serve_admin
from omnibot.admin.users import MongoUserStore
from omnibot.shared.settings import Settings
from omnibot.testkit.ports import free_port
from omnibot.testkit.services import ServiceTask


async def test_throttle_slows_an_account_and_an_address_down(db: AsyncDatabase[dict[str, Any]]) -> None:
    throttle = MongoSignInThrottle(db)
    await throttle.ensure_indexes()
    for n in range(FREE_FAILURES):
        assert await throttle.wait_s("a@x.ru", "10.0.0.1", 100.0 + n) == 0
        await throttle.failed("a@x.ru", "10.0.0.1", 100.0 + n)
    assert await throttle.wait_s("a@x.ru", "10.0.0.9", 102.5) > 0  # the account, from anywhere
    assert await throttle.wait_s("b@x.ru", "10.0.0.1", 102.5) > 0  # the address, for any account
    assert await throttle.wait_s("b@x.ru", "10.0.0.9", 102.5) == 0
    assert await throttle.wait_s("a@x.ru", "10.0.0.9", 102.0 + 2.0) == 0  # 2 s after the last failure
    for _ in range(30):
        await throttle.failed("a@x.ru", "10.0.0.1", 200.0)
    assert await throttle.wait_s("a@x.ru", "10.0.0.9", 200.0) == MAX_DELAY_S
    await throttle.succeeded("a@x.ru")
    assert await throttle.wait_s("a@x.ru", "10.0.0.9", 200.0) == 0
    assert await throttle.wait_s("c@x.ru", "10.0.0.1", 200.0) > 0  # the address stays slowed
    # A failure long after the last one starts a new count: one, not thirty-one.
    later = 200.0 + WINDOW_S + 1
    await throttle.failed("c@x.ru", "10.0.0.1", later)
    assert await throttle.wait_s("d@x.ru", "10.0.0.1", later) == 0
    assert (await db.sign_in_failures.find_one({"_id": "ip:10.0.0.1"}) or {})["count"] == 1


async def attempt(session: aiohttp.ClientSession, base: str, password: str) -> tuple[int, str]:
    async with session.get(f"{base}/sign-in") as page:
        csrf = re.search(r'name="_csrf" value="([^"]+)"', await page.text())
    assert csrf is not None
    form = {"_csrf": csrf.group(1), "email": "lead@example.com", "password": password, "next": "/"}
    async with session.post(f"{base}/sign-in", data=form, allow_redirects=False) as answer:
        return answer.status, await answer.text()


async def test_two_admin_replicas_share_the_count(
    settings: Settings, db: AsyncDatabase[dict[str, Any]]
) -> None:
    await MongoUserStore(db).create("lead@example.com", "admin", "admin-password-1")
    ports = (free_port(), free_port())
    replicas = []
    for port in ports:
        replica = ServiceTask(
            "admin", serve_admin, msgspec.structs.replace(settings, admin_host="127.0.0.1", admin_port=port)
        )
        await replica.wait_ready()
        replicas.append(replica)
    first, second = (f"http://127.0.0.1:{port}" for port in ports)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            # Wrong passwords spread over both replicas: neither saw three, together they did.
            assert (await attempt(session, first, "wrong-1"))[0] == 401
            assert (await attempt(session, second, "wrong-2"))[0] == 401
            assert (await attempt(session, first, "wrong-3"))[0] == 401
            status, page = await attempt(session, second, "admin-password-1")
            assert status == 429 and "Too many attempts" in page
            assert (await attempt(session, first, "admin-password-1"))[0] == 429
    finally:
        for replica in replicas:
            await replica.stop()
