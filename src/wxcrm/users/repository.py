"""Every query on staff accounts."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.db import ContainsIgnoringCase, dialect_insert
from wxcrm.users.models import Role, SignedOutToken, User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def by_username(self, username: str) -> User | None:
        result = await self.session.execute(select(User).where(User.username == username))
        return result.scalar_one_or_none()

    async def by_phone(self, phone: str) -> User | None:
        """The account with this normalised mobile number."""
        result = await self.session.execute(select(User).where(User.phone == phone))
        return result.scalar_one_or_none()

    async def by_openid(self, openid: str) -> User | None:
        result = await self.session.execute(select(User).where(User.openid == openid))
        return result.scalar_one_or_none()

    async def bind_openid_if_unbound(self, user: User, openid: str) -> bool:
        """Bind `openid` to `user` unless the row holds another openid by now; whether it
        did. The condition is checked by the database, after any concurrent writer of the
        row has committed."""
        result = await self.session.execute(
            update(User)
            .where(User.id == user.id, or_(User.openid.is_(None), User.openid == openid))
            .values(openid=openid)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def names(self, ids: Collection[str]) -> Sequence[Row[str, str, str]]:
        """Id, name and username of these accounts: never a hash or an openid."""
        if not ids:
            return []
        result = await self.session.execute(
            select(User.id, User.name, User.username).where(User.id.in_(ids))
        )
        return result.all()

    async def active(self, limit: int) -> Sequence[User]:
        """Accounts that may log in, newest first."""
        result = await self.session.scalars(
            select(User)
            .where(User.is_active.is_(True))
            .order_by(User.created_at.desc(), User.id.desc())
            .limit(limit)
        )
        return result.all()

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def page(
        self,
        *,
        search: str | None,
        role: Role | None,
        active: bool | None,
        offset: int,
        limit: int,
    ) -> tuple[Sequence[User], int]:
        """One page of accounts, newest first, and how many match in all. `search` is matched
        as typed (`%` and `_` escaped) in the username, name or phone."""
        conditions = []
        if search:
            conditions.append(
                or_(
                    *(
                        ContainsIgnoringCase(column, search)
                        for column in (User.username, User.name, User.phone)
                    )
                )
            )
        if role is not None:
            conditions.append(User.role == role.value)
        if active is not None:
            conditions.append(User.is_active.is_(active))
        total = await self.session.scalar(select(func.count(User.id)).where(*conditions))
        result = await self.session.scalars(
            select(User)
            .where(*conditions)
            .order_by(User.created_at.desc(), User.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return result.all(), total or 0

    async def sign_out(self, token: str, expires_at: datetime) -> None:
        """Refuse `token` from now until it expires (a second sign-out changes nothing)."""
        insert = dialect_insert(self.session, SignedOutToken)
        await self.session.execute(
            insert.values(
                digest=token_digest(token), expires_at=expires_at
            ).on_conflict_do_nothing()
        )

    async def with_sign_out(self, user_id: str, token: str) -> tuple[User | None, bool]:
        """The account and whether `token` was signed out, in one statement: it runs on
        every staff request."""
        signed_out = exists().where(SignedOutToken.digest == token_digest(token))
        row = (
            await self.session.execute(select(User, signed_out).where(User.id == user_id))
        ).first()
        if row is None:
            return None, False
        return row[0], bool(row[1])

    async def lock_active_admins(self) -> Sequence[str]:
        """Ids of the active admins, their rows locked (PostgreSQL) until the transaction
        ends: of two admins removing each other at the same moment, the second sees the
        first's change."""
        result = await self.session.scalars(
            select(User.id)
            .where(User.role == Role.admin.value, User.is_active.is_(True))
            .order_by(User.id)  # one order for every locker: no deadlock between two
            .with_for_update()
        )
        return result.all()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    username: str

    def ref(self) -> dict[str, str]:
        return {"_id": self.id, "name": self.name, "username": self.username}

    def names(self) -> dict[str, str]:
        return {"name": self.name, "username": self.username}


class People(dict[str, Person]):
    """Staff by id, read in one query (names only: never a password hash or an openid)."""

    def ref(self, user_id: str | None) -> dict[str, str] | None:
        person = self.get(user_id) if user_id else None
        return person.ref() if person else None

    def names(self, user_id: str | None) -> dict[str, str] | None:
        person = self.get(user_id) if user_id else None
        return person.names() if person else None

    def called(self, user_id: str | None, otherwise: str) -> str:
        person = self.get(user_id) if user_id else None
        return (person.name or person.username) if person else otherwise


async def people(session: AsyncSession, ids: Iterable[str | None]) -> People:
    """The staff these ids name, for showing who owns or did what."""
    rows = await UserRepository(session).names({user_id for user_id in ids if user_id})
    return People({row.id: Person(row.id, row.name, row.username) for row in rows})
