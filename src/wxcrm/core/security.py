"""Password hashing (argon2) and signed tokens (JWT) for staff and mini-program sessions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TokenKind = Literal["staff", "miniprogram"]
_ALGORITHM = "HS256"
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# argon2 spends tens of milliseconds of CPU by design; run on the event loop, four
# concurrent logins would stall every other request of the process for that long.
async def hash_password_off_loop(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_off_loop(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


# A fixed hash to verify against when the username is unknown, so that a login for a
# missing user costs as much time as one with a wrong password.
DUMMY_PASSWORD_HASH = _hasher.hash("wxcrm-no-such-user")


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired or of the wrong kind."""


def create_token(
    key: str,
    subject: str,
    kind: TokenKind,
    lifetime: timedelta,
    claims: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    payload = {
        **(claims or {}),
        "sub": subject,
        "typ": kind,
        "iat": issued,
        "exp": issued + lifetime,
    }
    return jwt.encode(payload, key, algorithm=_ALGORITHM)


def decode_token(key: str, token: str, kind: TokenKind) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = jwt.decode(
            token, key, algorithms=[_ALGORITHM], options={"require": ["sub", "exp", "typ"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("expired") from exc
    except jwt.InvalidTokenError as exc:
        raise InvalidToken("invalid") from exc
    if payload.get("typ") != kind:
        raise InvalidToken("wrong kind")
    return payload
