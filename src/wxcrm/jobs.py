"""The scheduled jobs every delivery worker runs besides sending notifications.

Wiring only: each domain owns its job's logic; this list is what the worker is given.
"""

from __future__ import annotations

from wxcrm.core.db import refresh_planner_statistics
from wxcrm.core.idempotency import forget_expired
from wxcrm.customers.pool.service import recycle_to_pool
from wxcrm.customers.reminders import send_follow_up_reminders
from wxcrm.customers.transfer.pending import forget_old_imports
from wxcrm.notifications.worker import ScheduledJob
from wxcrm.users.service import forget_signed_out

# Recycling counts in days; a few minutes late is nothing, and every worker runs it.
RECYCLE_EVERY_SECONDS = 600.0
# The reminders go out within this long of their configured time; once they have gone, a
# run is two indexed reads.
FOLLOW_UP_REMINDER_EVERY_SECONDS = 180.0
# Idempotency keys live a day; an hour more or less is nothing.
FORGET_IDEMPOTENCY_KEYS_EVERY_SECONDS = 3600.0
# Uploads waiting for (or done with) their confirm live a day; an hour more is nothing.
FORGET_OLD_IMPORTS_EVERY_SECONDS = 3600.0
# Signed-out tokens are refused by their expiry anyway once it passes; dropping them is tidying.
FORGET_SIGNED_OUT_EVERY_SECONDS = 3600.0
# The tables grow slowly: hourly statistics keep SQLite's plans right (PostgreSQL: no-op).
PLANNER_STATISTICS_EVERY_SECONDS = 3600.0


def scheduled_jobs() -> list[ScheduledJob]:
    return [
        ScheduledJob("recycle_to_pool", every_seconds=RECYCLE_EVERY_SECONDS, run=recycle_to_pool),
        ScheduledJob(
            "follow_up_reminders",
            every_seconds=FOLLOW_UP_REMINDER_EVERY_SECONDS,
            run=send_follow_up_reminders,
        ),
        ScheduledJob(
            "forget_idempotency_keys",
            every_seconds=FORGET_IDEMPOTENCY_KEYS_EVERY_SECONDS,
            run=forget_expired,
        ),
        ScheduledJob(
            "forget_old_imports",
            every_seconds=FORGET_OLD_IMPORTS_EVERY_SECONDS,
            run=forget_old_imports,
        ),
        ScheduledJob(
            "forget_signed_out_tokens",
            every_seconds=FORGET_SIGNED_OUT_EVERY_SECONDS,
            run=forget_signed_out,
        ),
        ScheduledJob(
            "refresh_planner_statistics",
            every_seconds=PLANNER_STATISTICS_EVERY_SECONDS,
            run=refresh_planner_statistics,
        ),
    ]
