"""What a console list shares: its query in the URL, read leniently, and its pages.

A list's filters, page and page size live in the URL, so a manager can send a link to a
filtered list. A GET form sends every field, empty ones too, which mean "any"; an unreadable
page or page size falls back to the default rather than refusing the page; a bad filter value
is told in Chinese beside its field (400) instead of the API's 422. Under the list stand
共 N 条, the page links with gaps and the page-size choice (templates/_pagination.html).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from wxcrm.core.phones import phone_digits
from wxcrm.core.settings import Settings
from wxcrm.core.types import DATE_RANGE_MESSAGE, in_date_range

PAGE_SIZES = (10, 20, 50, 100)
DEFAULT_PAGE_SIZE = 20
# Far past any real list; it keeps the offset a query asks for bounded.
MAX_PAGE = 100_000
SEARCH_MAX = 64
PICK_FROM_LIST = "请从列表中选择"


@dataclass(kw_only=True)
class ListQuery:
    """A list's query as its URL holds it: the filters by their query names (the API's), the
    page and its size, and what was wrong with any filter, by field."""

    path: str
    values: dict[str, str]
    page: int = 1
    limit: int = DEFAULT_PAGE_SIZE
    sizes: tuple[int, ...] = PAGE_SIZES
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    @property
    def filtered(self) -> bool:
        return any(self.values.values())

    def query(self, **changes: Any) -> str:
        """This list's query string with `changes` (None drops one); empty values and the
        defaults left out, so equal lists have equal URLs."""
        params = {**self.values, "page": self.page, "limit": self.limit, **changes}
        defaults = {"page": "1", "limit": str(DEFAULT_PAGE_SIZE)}
        kept = {k: str(v) for k, v in params.items() if v is not None and str(v)}
        return urlencode({k: v for k, v in kept.items() if v != defaults.get(k)})

    def url(self, **changes: Any) -> str:
        query = self.query(**changes)
        return self.path + (f"?{query}" if query else "")

    def pager(self, total: int, *, at_least: bool = False) -> Pager:
        return Pager(
            total=total, page=self.page, limit=self.limit, sizes=self.sizes, at_least=at_least
        )


@dataclass(frozen=True)
class Pager:
    """The pagination under a list: 共 N 条, the page links and the page-size choice."""

    total: int
    page: int
    limit: int
    sizes: tuple[int, ...] = PAGE_SIZES
    # `total` is a lower bound (a broad text search stops counting): 超过 N 条, not 共 N 条.
    at_least: bool = False

    @property
    def pages(self) -> int:
        return max(1, (self.total + self.limit - 1) // self.limit)

    @property
    def numbers(self) -> list[int | None]:
        """The page links to show: first, last and two either side of this one; None is a
        gap."""
        last = self.pages
        shown = sorted({1, last, *range(max(1, self.page - 2), min(last, self.page + 2) + 1)})
        numbers: list[int | None] = []
        for number in shown:
            if numbers and number - (numbers[-1] or 0) > 1:
                numbers.append(None)
            numbers.append(number)
        return numbers


def lenient_number(text: str | None, default: int) -> int:
    """A small whole number as typed in a URL, else `default` (never a refusal)."""
    text = (text or "").strip()
    return int(text) if text.isdecimal() and len(text) <= 6 else default


def read_page(params: Mapping[str, str], sizes: tuple[int, ...] = PAGE_SIZES) -> tuple[int, int]:
    """The page and page size asked for: an unreadable page is the first, a size not offered
    the default."""
    page = min(max(lenient_number(params.get("page"), 1), 1), MAX_PAGE)
    limit = lenient_number(params.get("limit"), DEFAULT_PAGE_SIZE)
    return page, limit if limit in sizes else DEFAULT_PAGE_SIZE


def read_search(values: dict[str, str], name: str, errors: dict[str, str]) -> None:
    """The search box: a phone typed grouped, `138 0013 8000`, or in full-width digits, is
    looked for as it is stored; a search longer than the box allows is told beside it."""
    digits = phone_digits(values[name])
    if digits.isdigit():
        values[name] = digits
    if len(values[name]) > SEARCH_MAX:
        errors[name] = f"搜索内容最多 {SEARCH_MAX} 个字符"


def customer_choices(settings: Settings) -> dict[str, list[str]]:
    """The customer fields a filter offers as lists (from the settings), by query name."""
    return {
        "leadSource": settings.lead_sources,
        "serviceCategory": settings.service_categories,
        "contractStatus": settings.contract_statuses,
        "leadLevel": settings.lead_levels,
    }


def check_choices(
    values: Mapping[str, str], choices: Mapping[str, list[str]], errors: dict[str, str]
) -> None:
    """A chosen value must be one the list offers: a link may carry any text."""
    for name, allowed in choices.items():
        value = values.get(name)
        if value and value not in allowed:
            errors[name] = PICK_FROM_LIST


def read_dates(
    values: Mapping[str, str], start: str, end: str, errors: dict[str, str]
) -> tuple[date | None, date | None]:
    """A date range from two fields: an empty one is no bound; an unreadable date, one out of
    the app's range or an end before the start is told beside its field."""
    first, last = _day(values, start, errors), _day(values, end, errors)
    if first and last and first > last:
        errors[end] = "结束日期不能早于开始日期"
    return first, last


def _day(values: Mapping[str, str], name: str, errors: dict[str, str]) -> date | None:
    text = values.get(name, "")
    if not text:
        return None
    try:
        return in_date_range(date.fromisoformat(text))
    except ValueError as wrong:
        errors[name] = DATE_RANGE_MESSAGE if "日期" in str(wrong) else "日期格式应为 2024-01-31"
        return None


def wants_region(request: Request, region_id: str, query: ListQuery) -> bool:
    """Whether htmx asks for the list's region alone and may have it: restoring history needs
    the page, and so does a query with a bad value, whose message stands beside its field in
    the filter bar, outside the region."""
    return (
        request.headers.get("HX-Target") == region_id
        and not request.headers.get("HX-History-Restore-Request")
        and not query.errors
    )


class Addressed(Protocol):
    """A query that knows its own URL (a list's, or the dashboard's period)."""

    def url(self) -> str: ...


def pushed(region: HTMLResponse, query: Addressed) -> HTMLResponse:
    """A re-rendered region that puts the list's own URL in the address bar, without the
    form's empty fields."""
    region.headers["HX-Push-Url"] = query.url()
    return region
