"""The 家政 record: what a family needs (staff-api §6.1), its input rules with the original's
Chinese messages, and the mapping of the mini program's older free-text need card onto the
structured fields (§6.3)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from wxcrm.core.clock import SHANGHAI
from wxcrm.core.types import DATE_RANGE_MESSAGE, in_date_range

REST_SCHEDULES = ("单休", "双休", "无休", "调休", "待定")
EDUCATION_LEVELS = (
    "无学历",
    "小学",
    "初中",
    "中专",
    "职高",
    "高中",
    "大专",
    "本科",
    "研究生及以上",
)
MAX_DEAL_AMOUNT = 10_000_000


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _number(label: str, value: Any) -> float:
    """`value` (a JSON number or numeric text) as a float; an integer past a float's range
    is infinitely large, so that the bound checks refuse it."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{label}必须是数字")
    try:
        return float(value)
    except OverflowError:  # only an int can overflow a float
        return math.inf if int(value) > 0 else -math.inf
    except ValueError:
        raise ValueError(f"{label}必须是数字") from None


def _whole_number(label: str, low: int, high: int, high_message: str) -> Any:
    def check(value: Any) -> Any:
        value = _blank_to_none(value)
        if value is None:
            return None
        number = _number(label, value)
        if math.isinf(number):
            raise ValueError(f"{label}不能为负数" if number < 0 else high_message)
        if not number.is_integer():
            raise ValueError(f"{label}必须是整数")
        if number < low:
            raise ValueError(f"{label}不能为负数")
        if number > high:
            raise ValueError(high_message)
        return int(number)

    return BeforeValidator(check)


def _amount(value: Any) -> Any:
    value = _blank_to_none(value)
    if value is None:
        return None
    number = _number("成交金额", value)
    if math.isnan(number) or number < 0:
        raise ValueError("成交金额不能为负数")
    if number > MAX_DEAL_AMOUNT:
        raise ValueError("成交金额不能超过1000万元")
    return round(number, 2)


def day_in_beijing(value: Any, message: str) -> date | None:
    """An ISO date, or an ISO time (what `Date.toISOString()` sends) read as its day in
    Beijing; blank is None. Anything else, or a day outside the CRM's range, is refused with
    `message` (a validator's error)."""
    value = _blank_to_none(value)
    if value is None or isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError(message)
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            aware = moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)
            day = aware.astimezone(SHANGHAI).date()
    except ValueError:
        raise ValueError(message) from None
    except OverflowError:  # its day in Beijing is past year 9999
        raise ValueError(DATE_RANGE_MESSAGE) from None
    return in_date_range(day)


def _day(message: str) -> Any:
    return BeforeValidator(lambda value: day_in_beijing(value, message))


def _one_of(label: str, choices: tuple[str, ...], message: str | None = None) -> Any:
    def check(value: Any) -> Any:
        value = _blank_to_none(value)
        if value is None:
            return None
        if not isinstance(value, str) or value.strip() not in choices:
            raise ValueError(message or f"{label}必须是：{'、'.join(choices)}之一")
        return value.strip()

    return BeforeValidator(check)


def _text(max_length: int) -> Any:
    return Field(None, max_length=max_length)


SalaryBudget = Annotated[
    int | None, _whole_number("薪资预算", 0, 50_000, "薪资预算不能高于50000元")
]
HomeArea = Annotated[int | None, _whole_number("家庭面积", 0, 1000, "家庭面积不能超过1000平方米")]
FamilySize = Annotated[int | None, _whole_number("家庭人口", 0, 20, "家庭人口不能超过20人")]
ServiceDays = Annotated[int | None, _whole_number("服务天数", 0, 3650, "服务天数不能超过3650天")]
DealAmount = Annotated[float | None, BeforeValidator(_amount)]
StartDate = Annotated[date | None, _day("期望上户日期格式不正确")]
DeliveryDate = Annotated[date | None, _day("预产期格式不正确")]
RestSchedule = Annotated[str | None, _one_of("休息方式", REST_SCHEDULES)]
Education = Annotated[
    str | None, _one_of("学历要求", EDUCATION_LEVELS, "学历要求必须在指定选项中选择")
]


class HouseholdIn(BaseModel):
    """The 家政 fields every customer form accepts (console, staff mini program, import):
    all optional, camelCase on the wire; the customer forms extend it."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, str_strip_whitespace=True, alias_generator=to_camel
    )

    id_card_number: str | None = _text(32)
    area: str | None = _text(64)
    salary_budget: SalaryBudget = None
    expected_start_date: StartDate = None
    expected_delivery_date: DeliveryDate = None
    home_area: HomeArea = None
    family_size: FamilySize = None
    rest_schedule: RestSchedule = None
    service_days: ServiceDays = None
    age_requirement: str | None = _text(64)
    gender_requirement: str | None = _text(16)
    origin_requirement: str | None = _text(64)
    education_requirement: Education = None
    deal_amount: DealAmount = None
    need_order_type: str | None = _text(64)
    need_working_hours: str | None = _text(255)
    need_salary: str | None = _text(255)
    need_rest_time: str | None = _text(255)
    need_family_members: str | None = _text(255)
    need_service_address: str | None = _text(255)
    need_house_area: str | None = _text(255)
    need_work_content: str | None = _text(2000)
    need_remarks: str | None = _text(2000)
    need_service_period: str | None = _text(255)
    need_onboarding_time: str | None = _text(255)


HOUSEHOLD_FIELDS = tuple(HouseholdIn.model_fields)
# The fields that are numbers: the mini program sends "" or null for "not filled in".
NUMBER_FIELDS = ("salary_budget", "home_area", "family_size", "service_days", "deal_amount")

_FIRST_INTEGER = re.compile(r"\d+")
_FOUR_DIGITS = re.compile(r"\d{4}")
_CHINESE_NUMERALS = {"两": 2} | {char: n for n, char in enumerate("一二三四五六七八九十", 1)}


def _first_integer(text: str, low: int, high: int) -> int | None:
    found = _FIRST_INTEGER.search(text)
    if found is None:
        return None
    number = int(found.group())
    return number if low <= number <= high else None


def _family_size(text: str) -> int | None:
    number = _first_integer(text, 1, 20)
    if number is not None:
        return number
    for char in text:
        if char in _CHINESE_NUMERALS:
            return _CHINESE_NUMERALS[char]
    return None


def _start_date(text: str) -> date | None:
    if not _FOUR_DIGITS.search(text):
        return None
    cleaned = re.sub(r"[年月/.]", "-", text.strip()).replace("日", "").replace("号", "")
    try:
        day = date.fromisoformat("-".join(part.zfill(2) for part in cleaned.split("-")[:3]))
    except ValueError:
        return None
    return day


# The need card's fields and the structured field each may fill, with how its text is read
# (given the configured service categories).
_NEED_CARD_RULES: tuple[tuple[str, str, Callable[[str, Sequence[str]], Any]], ...] = (
    ("need_order_type", "service_category", lambda t, categories: t if t in categories else None),
    ("need_salary", "salary_budget", lambda t, _: _first_integer(t, 1000, 50_000)),
    ("need_rest_time", "rest_schedule", lambda t, _: t if t in REST_SCHEDULES else None),
    ("need_onboarding_time", "expected_start_date", lambda t, _: _start_date(t)),
    ("need_house_area", "home_area", lambda t, _: _first_integer(t, 10, 1000)),
    ("need_family_members", "family_size", lambda t, _: _family_size(t)),
    ("need_service_address", "address", lambda t, _: t or None),
)
NEED_CARD_TARGETS = tuple(target for _, target, _ in _NEED_CARD_RULES)


def legacy_need_values(
    values: dict[str, Any], stored: dict[str, Any], service_categories: Sequence[str]
) -> dict[str, Any]:
    """The structured fields an older need card fills (staff-api §6.3).

    `values` is the request's fields by Python name; `stored`, the record's current values of
    `NEED_CARD_TARGETS` (empty for a new customer). A structured field is filled only when
    neither gives it a value; the need text itself is stored as well, by the caller.
    """

    def empty(field: str) -> bool:
        return values.get(field) in (None, "") and stored.get(field) in (None, "")

    def text(field: str) -> str:
        value = values.get(field)
        return value.strip() if isinstance(value, str) else ""

    found: dict[str, Any] = {}
    for source, target, parse in _NEED_CARD_RULES:
        if text(source) and empty(target):
            value = parse(text(source), service_categories)
            if value is not None:
                found[target] = value
    return found
