"""The business clock: the company's days, which are China's calendar days (and so are
WeChat's daily quotas), whatever time zone the server runs in."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wxcrm.core.models import utcnow


def _shanghai() -> tzinfo:
    try:
        return ZoneInfo("Asia/Shanghai")
    except ZoneInfoNotFoundError:  # a slim image without a tz database
        # China has kept +08:00 without daylight saving since 1991.
        return timezone(timedelta(hours=8), "Asia/Shanghai")


SHANGHAI = _shanghai()


def business_day(moment: datetime) -> date:
    """The day `moment` falls on in China."""
    return moment.astimezone(SHANGHAI).date()


def today() -> date:
    return business_day(utcnow())


def day_start(day: date) -> datetime:
    """Midnight in China at the start of `day`, as a UTC moment."""
    return datetime.combine(day, time.min, tzinfo=SHANGHAI).astimezone(UTC)
