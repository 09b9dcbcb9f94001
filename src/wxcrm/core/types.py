"""Input types every domain shares."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, TypeVar

from pydantic import AfterValidator

# The dates a CRM has any use for. Outside them, converting to a time zone or to the
# database's timestamp overflows (year 1, year 9999): refused as bad input instead.
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2100, 12, 31)
DATE_RANGE_MESSAGE = f"日期须在 {EARLIEST_DATE} 至 {LATEST_DATE} 之间"


_Day = TypeVar("_Day", date, datetime, date | datetime)


def in_date_range(value: _Day) -> _Day:
    day = value.date() if isinstance(value, datetime) else value
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValueError(DATE_RANGE_MESSAGE)
    return value


BoundedDate = Annotated[date, AfterValidator(in_date_range)]
