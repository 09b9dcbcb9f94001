"""The scheduled jobs every delivery worker runs besides sending notifications.

Wiring only: each domain owns its job's logic; this list is what the worker is given.
"""

from __future__ import annotations

from wxcrm.notifications.worker import ScheduledJob


def scheduled_jobs() -> list[ScheduledJob]:
    return []
