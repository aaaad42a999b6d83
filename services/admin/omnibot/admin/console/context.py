"""What every console handler needs: the shared dependencies, and who is asking in what language.

`Console` holds the dependencies (management operations, the user, session and audit stores, the
sign-in throttle, the templates); `Visitor` is the signed-in user (or nobody), their session and
CSRF token, and the page language. `render` fills in what every page shows (the navigation, the
user, the language switch, the CSRF token for forms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase

from omnibot.admin.audit import MongoAuditLog
from omnibot.admin.console.i18n import Language, translate
from omnibot.admin.console.render import age, page
from omnibot.admin.console.sessions import MongoSessionStore, Session
from omnibot.admin.console.stats import ConsoleStats
from omnibot.admin.console.throttle import MongoSignInThrottle
from omnibot.admin.operations import Management
from omnibot.admin.users import MongoUserStore, User
from omnibot.shared.crypto import SecretBox
from omnibot.shared.mongo import Document
from omnibot.shared.settings import Settings

NAVIGATION = (
    ("/", "Overview"),
    ("/channels", "Channels"),
    ("/agents", "Agents"),
    ("/chats", "Chats"),
    ("/dead-letters", "Dead letters"),
    ("/audit", "Audit log"),
)


@dataclass
class Console:
    management: Management
    users: MongoUserStore
    sessions: MongoSessionStore
    audit: MongoAuditLog
    stats: ConsoleStats
    box: SecretBox
    settings: Settings
    templates: jinja2.Environment
    throttle: MongoSignInThrottle

    @classmethod
    def build(
        cls, db: AsyncDatabase[Document], management: Management, box: SecretBox, settings: Settings
    ) -> Console:
        from omnibot.admin.console.render import build_environment

        return cls(
            management=management,
            users=MongoUserStore(db),
            sessions=MongoSessionStore(db),
            audit=MongoAuditLog(db),
            stats=ConsoleStats(db),
            box=box,
            settings=settings,
            templates=build_environment(),
            throttle=MongoSignInThrottle(db),
        )

    async def ensure_indexes(self) -> None:
        await self.users.ensure_indexes()
        await self.sessions.ensure_indexes()
        await self.audit.ensure_indexes()
        await self.stats.ensure_indexes()
        await self.throttle.ensure_indexes()


@dataclass
class Visitor:
    lang: Language
    csrf: str
    user: User | None = None
    session: Session | None = None
    token: str = ""

    @property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.role == "admin"

    def t(self, text: str, **values: Any) -> str:
        translated = translate(self.lang, text)
        return translated.format(**values) if values else translated


CONSOLE = web.AppKey("console", Console)
VISITOR = web.RequestKey("visitor", Visitor)


def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE]


def visitor_of(request: web.Request) -> Visitor:
    return request[VISITOR]


def render(
    request: web.Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> web.Response:
    visitor = visitor_of(request)
    full = {
        "_": visitor.t,
        "visitor": visitor,
        "lang": visitor.lang,
        "csrf": visitor.csrf,
        "navigation": NAVIGATION,
        "path": request.path,
        "here": request.path_qs,
        "age": lambda since: age(visitor.lang, since),
        **(context or {}),
    }
    return page(console_of(request).templates, template, full, status=status)
