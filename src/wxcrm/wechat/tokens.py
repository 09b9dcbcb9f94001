"""The access token, shared by every process through the database.

One row per app id holds the token. It is refreshed when under 300 s remain, by one caller
at a time: coroutines of a process queue on a local lock, processes on a lease in the row.
Everyone else waits for the refresher's result and reads it from the row.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select, update

from wxcrm.core.clock import business_day
from wxcrm.core.db import Database, insert_ignoring_conflicts
from wxcrm.core.metrics import TOKEN_FETCHES
from wxcrm.core.models import utcnow
from wxcrm.wechat.errors import WeChatError
from wxcrm.wechat.models import WeChatToken

log = structlog.get_logger(__name__)

REFRESH_MARGIN = timedelta(seconds=300)
# How long a refresher may hold the lease before others assume it died.
LEASE = timedelta(seconds=15)
POLL_INTERVAL_S = 0.05
# WeChat's limits on force_refresh (stable_token with force_refresh=true).
FORCE_REFRESH_SPACING = timedelta(seconds=30)
FORCE_REFRESH_DAILY_LIMIT = 20


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class _Stored:
    token: str | None
    expires_at: datetime | None

    def fresh(self, now: datetime) -> bool:
        return (
            self.token is not None
            and self.expires_at is not None
            and self.expires_at - now > REFRESH_MARGIN
        )


Fetch = Callable[[bool], Awaitable[IssuedToken]]


class TokenStore:
    def __init__(self, database: Database, app_id: str, fetch: Fetch) -> None:
        self._database = database
        self._app_id = app_id
        self._fetch = fetch
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._local = asyncio.Lock()
        # The shared row as last read; a read cache, never a token of our own.
        self._seen = _Stored(None, None)

    async def get(self) -> str:
        """A token with more than 300 s to live."""
        seen = self._seen
        if seen.fresh(utcnow()) and seen.token:
            return seen.token
        async with self._local:
            stored = await self._read()
            if stored.fresh(utcnow()) and stored.token:
                return stored.token
            return await self._refresh(replacing=stored.token, force=False)

    async def refresh_after_rejection(self, rejected: str) -> str:
        """WeChat refused `rejected` (40001/40014/42001): a token worth one more try.

        If another caller already replaced it, that one is used. Otherwise fetch in normal
        mode; only if WeChat hands back the same token is `force_refresh` used, within its
        limits, and an alert logged.
        """
        async with self._local:
            stored = await self._read()
            if stored.token != rejected and stored.fresh(utcnow()) and stored.token:
                return stored.token
            token = await self._refresh(replacing=rejected, force=False)
            if token != rejected:
                return token
            log.error(
                "wechat token alert: WeChat returned the token it had just rejected; "
                "forcing a refresh",
                app_id=self._app_id,
            )
            return await self._refresh(replacing=rejected, force=True)

    async def _refresh(self, *, replacing: str | None, force: bool) -> str:
        deadline = asyncio.get_running_loop().time() + LEASE.total_seconds() * 2
        while True:
            stored = await self._read()
            if stored.token != replacing and stored.fresh(utcnow()) and stored.token:
                return stored.token  # another process refreshed while we waited
            if await self._take_lease(replacing):
                return await self._fetch_and_store(force)
            if asyncio.get_running_loop().time() > deadline:
                raise WeChatError(None, "timed out waiting for another process's token refresh")
            await asyncio.sleep(POLL_INTERVAL_S)

    async def _fetch_and_store(self, force: bool) -> str:
        try:
            if force:
                await self._count_force_refresh()
            issued = await self._fetch_counted(force)
        except BaseException:
            await self._release_lease()
            raise
        now = utcnow()
        expires_at = now + timedelta(seconds=issued.expires_in)
        async with self._database.writer() as session:
            await session.execute(
                update(WeChatToken)
                .where(WeChatToken.app_id == self._app_id)
                .values(
                    access_token=issued.access_token,
                    expires_at=expires_at,
                    refreshed_at=now,
                    refresh_owner=None,
                    refresh_lease_until=None,
                )
            )
            await session.commit()
        self._seen = _Stored(issued.access_token, expires_at)
        log.info("wechat token refreshed", app_id=self._app_id, force=force)
        return issued.access_token

    async def _fetch_counted(self, force: bool) -> IssuedToken:
        # A fetch cancelled (the process stopping) is counted as neither: it did not fail.
        try:
            issued = await self._fetch(force)
        except Exception:
            TOKEN_FETCHES.labels(str(force).lower(), "error").inc()
            raise
        TOKEN_FETCHES.labels(str(force).lower(), "ok").inc()
        return issued

    async def _count_force_refresh(self) -> None:
        """Spend one of today's force refreshes, or refuse if WeChat's limits forbid one."""
        now = utcnow()
        today = business_day(now)  # WeChat's quotas are counted by China's days
        async with self._database.writer() as session:
            row = await session.get(WeChatToken, self._app_id)
            assert row is not None  # _take_lease made it
            last = row.last_force_refresh_at
            if last is not None and now - last < FORCE_REFRESH_SPACING:
                raise WeChatError(40001, "token rejected; force_refresh used less than 30 s ago")
            used = row.force_refresh_count if row.force_refresh_day == today else 0
            if used >= FORCE_REFRESH_DAILY_LIMIT:
                raise WeChatError(40001, "token rejected; today's 20 force_refresh calls are used")
            row.force_refresh_day = today
            row.force_refresh_count = used + 1
            row.last_force_refresh_at = now
            await session.commit()

    async def _take_lease(self, replacing: str | None) -> bool:
        """Become the refresher, if nobody is, and the token still needs replacing.

        The second condition matters: between our read and this update another process
        may have stored a fresh token and let go of the lease.
        """
        now = utcnow()
        needs_replacing = or_(
            WeChatToken.access_token.is_(None),
            WeChatToken.expires_at.is_(None),
            WeChatToken.expires_at <= now + REFRESH_MARGIN,
        )
        if replacing is not None:
            needs_replacing = or_(needs_replacing, WeChatToken.access_token == replacing)
        async with self._database.writer() as session:
            await session.execute(
                insert_ignoring_conflicts(session, WeChatToken, {"app_id": self._app_id})
            )
            result = await session.execute(
                update(WeChatToken)
                .where(
                    WeChatToken.app_id == self._app_id,
                    or_(
                        WeChatToken.refresh_lease_until.is_(None),
                        WeChatToken.refresh_lease_until < now,
                    ),
                    needs_replacing,
                )
                .values(refresh_owner=self._owner, refresh_lease_until=now + LEASE)
            )
            await session.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _release_lease(self) -> None:
        async with self._database.writer() as session:
            await session.execute(
                update(WeChatToken)
                .where(WeChatToken.app_id == self._app_id, WeChatToken.refresh_owner == self._owner)
                .values(refresh_owner=None, refresh_lease_until=None)
            )
            await session.commit()

    async def _read(self) -> _Stored:
        async with self._database.reader() as session:
            row = (
                await session.execute(
                    select(WeChatToken.access_token, WeChatToken.expires_at).where(
                        WeChatToken.app_id == self._app_id
                    )
                )
            ).one_or_none()
        stored = _Stored(row[0], row[1]) if row else _Stored(None, None)
        self._seen = stored
        return stored
