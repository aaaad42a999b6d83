"""People who sign in to the console: accounts with an e-mail, a role and an argon2 password hash.

Owns the `users` collection and the rules of an account: e-mails are stored lower-case and unique,
roles are `admin` (everything) or `viewer` (reads only), a disabled account cannot sign in, and a
password is never stored or returned, only its argon2id hash. The command line (`omnibot user ...`)
and the console's sign-in both use this store.
"""

from __future__ import annotations

import re
import time
from typing import Literal, get_args

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from omnibot.shared.errors import OmnibotError
from omnibot.shared.mongo import Document

Role = Literal["admin", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_hasher = PasswordHasher()
# Verified when the e-mail is unknown, so a wrong e-mail costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class UserRefused(OmnibotError):
    """The account change was refused; `problems` names each field that is wrong."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class User(msgspec.Struct, kw_only=True, frozen=True):
    email: str
    role: Role
    password_hash: str
    disabled: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    # Bumped by a password reset, a role change or disabling: sessions made before are dead.
    generation: int = 0


class UserView(msgspec.Struct, kw_only=True, frozen=True):
    email: str
    role: Role
    disabled: bool
    created_at: float


def normalise_email(value: str) -> str:
    return value.strip().lower()


def email_problem(value: str) -> str | None:
    return None if _EMAIL.match(value.strip()) else "email: must be an e-mail address"


def role_problem(value: str) -> str | None:
    return None if value in ROLES else "role: must be admin or viewer"


def password_problem(value: str) -> str | None:
    if len(value) < MIN_PASSWORD:
        return f"password: at least {MIN_PASSWORD} characters"
    if len(value) > MAX_PASSWORD:
        return f"password: at most {MAX_PASSWORD} characters"
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _doc(user: User) -> Document:
    doc: Document = msgspec.to_builtins(user)
    doc["_id"] = doc.pop("email")
    return doc


def _user(doc: Document) -> User:
    data = dict(doc)
    data["email"] = data.pop("_id")
    return msgspec.convert(data, User)


def view(user: User) -> UserView:
    return UserView(email=user.email, role=user.role, disabled=user.disabled, created_at=user.created_at)


class MongoUserStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._users = db.users

    async def ensure_indexes(self) -> None:
        await self._users.create_index([("role", ASCENDING)])

    async def create(self, email: str, role: str, password: str) -> UserView:
        problems = [p for p in (email_problem(email), role_problem(role), password_problem(password)) if p]
        if problems:
            raise UserRefused(problems)
        now = time.time()
        user = User(
            email=normalise_email(email),
            role=role,  # type: ignore[arg-type]  # checked by role_problem
            password_hash=hash_password(password),
            created_at=now,
            updated_at=now,
        )
        try:
            await self._users.insert_one(_doc(user))
        except DuplicateKeyError:
            raise UserRefused([f"email: a user {user.email} exists already"]) from None
        return view(user)

    async def get(self, email: str) -> User | None:
        doc = await self._users.find_one({"_id": normalise_email(email)})
        return None if doc is None else _user(doc)

    async def list(self) -> list[UserView]:
        return [view(_user(doc)) async for doc in self._users.find({}).sort("_id", ASCENDING)]

    async def count(self) -> int:
        return int(await self._users.count_documents({}))

    async def authenticate(self, email: str, password: str) -> User | None:
        """The user when the e-mail and password are right and the account is enabled; else None."""
        user = await self.get(email) if len(password) <= MAX_PASSWORD else None
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password[:MAX_PASSWORD])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if user is None or user.disabled:
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            await self._set(user.email, {"password_hash": hash_password(password)}, bump=False)
        return user

    async def set_role(self, email: str, role: str) -> UserView:
        problem = role_problem(role)
        if problem:
            raise UserRefused([problem])
        return await self._set(email, {"role": role})

    async def disable(self, email: str, disabled: bool = True) -> UserView:
        return await self._set(email, {"disabled": disabled})

    async def reset_password(self, email: str, password: str) -> UserView:
        problem = password_problem(password)
        if problem:
            raise UserRefused([problem])
        return await self._set(email, {"password_hash": hash_password(password)})

    async def _set(self, email: str, fields: Document, *, bump: bool = True) -> UserView:
        update: Document = {"$set": {**fields, "updated_at": time.time()}}
        if bump:
            update["$inc"] = {"generation": 1}
        result = await self._users.update_one({"_id": normalise_email(email)}, update)
        if result.matched_count == 0:
            raise UserRefused([f"email: no user {normalise_email(email)}"])
        user = await self.get(email)
        assert user is not None
        return view(user)
