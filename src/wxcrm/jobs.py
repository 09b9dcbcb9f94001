"""The scheduled jobs every delivery worker runs besides sending notifications.

Wiring only: each domain owns its job's logic; this list is what the worker is given.
"""

from __future__ import annotations

from wxcrm.customers.pool.service import recycle_to_pool
from wxcrm.notifications.worker import ScheduledJob

# Recycling counts in days; a few minutes late is nothing, and every worker runs it.
RECYCLE_EVERY_SECONDS = 600.0


def scheduled_jobs() -> list[ScheduledJob]:
    return [
        ScheduledJob("recycle_to_pool", every_seconds=RECYCLE_EVERY_SECONDS, run=recycle_to_pool)
    ]
