"""GET /metrics: the processes' counters, and the figures read from the database at the
scrape (outbox backlog, the oldest waiting message, whether the database answers)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from wxcrm.core.db import DatabaseDep
from wxcrm.core.deps import SettingsDep, bearer
from wxcrm.core.errors import NotFound, Unauthorized
from wxcrm.core.metrics import CONTENT_TYPE, exposition
from wxcrm.core.middleware import METRICS_PATH
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.notifications.repository import WATCHED, NotificationRepository

router = APIRouter(tags=["health"])

DATABASE_READ_TIMEOUT_S = 3.0


class _Figures(Collector):
    """Families computed once for one scrape."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self.families


@router.get(
    METRICS_PATH,
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus' text exposition format",
        }
    },
)
async def metrics(
    database: DatabaseDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Response:
    """Prometheus metrics of every process on this machine (README: Operations)."""
    _check_access(credentials, settings)
    figures = await _database_figures(database)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(figures))
    return Response(exposition() + generate_latest(registry), media_type=CONTENT_TYPE)


def _check_access(credentials: HTTPAuthorizationCredentials | None, settings: Settings) -> None:
    token = settings.metrics_token.get_secret_value()
    if token:
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("需要有效的指标令牌（METRICS_TOKEN）")
    elif not settings.metrics_open:
        # As if there were no such page: production keeps it to a token or METRICS_PUBLIC.
        raise NotFound("接口不存在")


async def _database_figures(database: DatabaseDep) -> list[GaugeMetricFamily]:
    up = GaugeMetricFamily(
        "wxcrm_database_up", "1 when the scrape could read the database, 0 when it could not."
    )
    try:
        async with asyncio.timeout(DATABASE_READ_TIMEOUT_S):
            async with database.reader() as session:
                repository = NotificationRepository(session)
                backlog = await repository.backlog()
                now = utcnow()
                oldest = await repository.oldest_due_at(now)
    except Exception:  # any failure to read is "down", whatever its type
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    messages = GaugeMetricFamily(
        "wxcrm_outbox_messages",
        "Outbox messages in a state that needs watching: pending (due or waiting for a"
        " retry), sending, failed (given up).",
        labels=["status"],
    )
    for status in WATCHED:
        messages.add_metric([status.value], backlog[status.value])
    age = GaugeMetricFamily(
        "wxcrm_outbox_oldest_due_age_seconds",
        "How long the longest-waiting message due for delivery (pending and due, or sending)"
        " has been due; 0 when none is. Retries waiting out their backoff are not due.",
    )
    age.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    return [up, messages, age]
