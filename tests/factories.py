"""Small helpers that put rows in the test's session."""

from __future__ import annotations

import itertools

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.users import service as users_service
from wxcrm.users.models import Role, User

_serial = itertools.count(1)
DEFAULT_PASSWORD = "correct-horse-battery"


async def make_user(
    session: AsyncSession,
    role: Role = Role.advisor,
    *,
    username: str | None = None,
    password: str = DEFAULT_PASSWORD,
    name: str | None = None,
) -> User:
    return await users_service.create_user(
        session,
        username=username or f"{role.value}{next(_serial)}",
        password=password,
        role=role,
        name=name,
    )


async def token_for(client: httpx.AsyncClient, user: User) -> dict[str, str]:
    """Authorization headers of `user` (made with DEFAULT_PASSWORD), by logging in."""
    response = await client.post(
        "/api/auth/login", json={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['data']['token']}"}
