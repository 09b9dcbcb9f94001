"""Rate limits: rules from settings, counted per process in memory or shared in Redis.

Counting is the `limits` library's; what is ours is which rules exist, whose address a
request comes from (behind trusted proxies), and how a refusal reads (429, Retry-After).
"""

from __future__ import annotations

import hashlib
import inspect
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Annotated

import structlog
from fastapi import Depends, Request
from limits import RateLimitItem, parse_many
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from wxcrm.core.errors import RateLimited
from wxcrm.core.metrics import RATE_LIMIT_REFUSALS
from wxcrm.core.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Rule:
    """A named set of windows, all of which apply (e.g. 5 per 5 minutes and 20 per day)."""

    name: str
    windows: tuple[RateLimitItem, ...]

    @classmethod
    def parse(cls, name: str, spec: str) -> Rule:
        try:
            windows = tuple(parse_many(spec))
        except ValueError as error:
            raise ValueError(
                f"rate limit {name}: {spec!r} is not like '5/minute;20/day'"
            ) from error
        return cls(name, windows)


@dataclass(frozen=True)
class Rules:
    login_failures_per_username: Rule
    login_failures_per_ip: Rule
    login_per_ip: Rule
    code_failures_per_ip: Rule
    wechat_login_per_ip: Rule
    phone_per_openid: Rule
    action_per_openid: Rule
    action_per_ip: Rule

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        return cls(
            **{
                name: Rule.parse(name, getattr(settings, f"rate_limit_{name}"))
                for name in cls.__dataclass_fields__
            }
        )


def _storage_uri(url: str) -> str:
    # `limits` names its asyncio storages async+memory://, async+redis://.
    return url if url.startswith("async+") else f"async+{url}"


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self.rules = Rules.from_settings(settings)
        self._storage = storage_from_string(
            _storage_uri(settings.rate_limit_storage_url),
            key_prefix=settings.rate_limit_key_prefix,
            wrap_exceptions=True,
        )
        self._strategy = FixedWindowRateLimiter(self._storage)
        self._trusted_proxies = [ip_network(p, strict=False) for p in settings.trusted_proxies]

    async def check(self, rule: Rule, key: str) -> None:
        """Refuse (429) when `rule` has no room left for `key`; counts nothing."""
        await self._apply(rule, key, self._strategy.test)

    async def hit(self, rule: Rule, key: str) -> None:
        """Count one for `key`; refuse (429) when a window of `rule` was already full."""
        await self._apply(rule, key, self._strategy.hit)

    async def _apply(self, rule: Rule, key: str, has_room: Callable[..., Awaitable[bool]]) -> None:
        if not self.enabled:
            return
        try:
            full = [w for w in rule.windows if not await has_room(w, rule.name, _k(key))]
        except StorageError:
            self._storage_down(rule)
            return
        if full:
            await self._refuse(rule, key, full)

    @asynccontextmanager
    async def failures_counted(
        self, *limits: tuple[Rule, str], failure: type[Exception]
    ) -> AsyncIterator[None]:
        """Refuse (429) while any of `limits` is full; count one against each when the
        block raises `failure` (a wrong password, a bad code), and let it through."""
        for rule, key in limits:
            await self.check(rule, key)
        try:
            yield
        except failure:
            for rule, key in limits:
                await self.hit(rule, key)
            raise

    async def clear(self, rule: Rule, key: str) -> None:
        try:
            for window in rule.windows:
                await self._strategy.clear(window, rule.name, _k(key))
        except StorageError:
            self._storage_down(rule)

    async def reset(self) -> None:
        """Forget every count (tests; an operator lifting all lockouts)."""
        outcome = self._storage.reset()
        if inspect.isawaitable(outcome):
            await outcome

    async def _refuse(self, rule: Rule, key: str, full: list[RateLimitItem]) -> None:
        waits = []
        for window in full:
            try:
                stats = await self._strategy.get_window_stats(window, rule.name, _k(key))
                waits.append(stats.reset_time - time.time())
            except StorageError:
                waits.append(window.get_expiry())
        retry_after = max(1, math.ceil(max(waits)))
        RATE_LIMIT_REFUSALS.labels(rule.name).inc()
        log.info("rate limited", rule=rule.name, retry_after=retry_after)
        raise RateLimited(
            f"请求过于频繁，请{_wait_words(retry_after)}后再试",
            {"retryAfter": retry_after},
            headers={"Retry-After": str(retry_after)},
        )

    @staticmethod
    def _storage_down(rule: Rule) -> None:
        # Open, not closed: a Redis outage must not lock every user out of the CRM.
        log.warning("rate limit storage unavailable; not limiting", rule=rule.name)

    def client_ip(self, request: Request) -> str:
        """The caller's address: the peer's, or from X-Forwarded-For when the peer is a
        trusted proxy (the nearest hop that is not one of ours)."""
        peer = request.client.host if request.client else "unknown"
        if not self._trusted(peer):
            return peer
        hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            if not self._trusted(hop):
                return hop
        return peer

    def _trusted(self, address: str) -> bool:
        if not self._trusted_proxies:
            return False
        try:
            parsed = ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self._trusted_proxies)


def _k(key: str) -> str:
    # Keys come from callers (usernames, openids): hashed, they are short and harmless.
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _wait_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}秒"
    if seconds < 3600:
        return f"{math.ceil(seconds / 60)}分钟"
    return f"{math.ceil(seconds / 3600)}小时"


async def get_rate_limiter(request: Request) -> RateLimiter:  # async: no thread pool
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]
