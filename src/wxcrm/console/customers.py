"""客户列表: the console's customer list, over the API's list (same filters, same query, same
visibility: an advisor sees only its own customers)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from wxcrm.console.display import beijing, grouped_phone
from wxcrm.console.routing import console_router, render_page
from wxcrm.console.session import ConsoleUser
from wxcrm.console.templating import render
from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.ids import OBJECT_ID_PATTERN
from wxcrm.core.types import DATE_RANGE_MESSAGE, in_date_range
from wxcrm.customers.records import service
from wxcrm.customers.records.deps import list_filters
from wxcrm.customers.records.filters import CustomerFilters, FollowUpStatus
from wxcrm.customers.records.schemas import SortField
from wxcrm.users.models import User
from wxcrm.users.repository import UserRepository, people

MAX_OWNERS = 1000

PAGE_SIZES = (10, 20, 50, 100)
DEFAULT_PAGE_SIZE = 20
MAX_PAGE = 100_000
SORTS = {
    SortField.created_at: "创建时间",
    SortField.updated_at: "更新时间",
    SortField.last_follow_up_at: "最后跟进",
}
# The region htmx re-renders when the filters or the page change.
RESULTS_ID = "customer-results"
STATUS_TONES = {
    "已签约": "green",
    "签约中": "blue",
    "匹配中": "blue",
    "流失客户": "grey",
    "已退款": "orange",
    "退款中": "orange",
}
_KEYWORD_MAX = 64

router = console_router()


@dataclass
class ListQuery:
    """The list's query parameters as the form holds them (the API's names), and what was
    wrong with any of them, by field."""

    values: dict[str, str]
    filters: CustomerFilters
    sort: SortField
    descending: bool
    page: int
    limit: int
    errors: dict[str, str] = field(default_factory=dict)

    def url(self, **changes: Any) -> str:
        """This list's URL with `changes` (None drops a parameter); empty values left out."""
        params = {**self.values, **{k: None if v is None else str(v) for k, v in changes.items()}}
        kept = {k: v for k, v in params.items() if v}
        return "/customers" + (f"?{urlencode(kept)}" if kept else "")


@router.get("/customers")
async def customer_list(
    request: Request, user: ConsoleUser, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """客户列表: search, filters, sort and pages, all in the URL."""
    query = _read_query(request, user)
    choices = {
        "leadSource": settings.lead_sources,
        "serviceCategory": settings.service_categories,
        "contractStatus": settings.contract_statuses,
        "leadLevel": settings.lead_levels,
    }
    for name, allowed in choices.items():
        value = query.values.get(name)
        if value and value not in allowed:
            query.errors[name] = "请从列表中选择"
    # The owner filter, for those who see everyone's customers: active staff by name.
    owners = await UserRepository(session).active(MAX_OWNERS) if user.is_staff_manager else []
    if query.values.get("assignedTo") and not any(
        owner.id == query.values["assignedTo"] for owner in owners
    ):
        query.errors.setdefault("assignedTo", "请从列表中选择负责人")
    rows: list[dict[str, Any]] = []
    total = 0
    if not query.errors:
        customers, total = await service.list_customers(
            session,
            user,
            query.filters,
            sort=query.sort,
            descending=query.descending,
            offset=(query.page - 1) * query.limit,
            limit=query.limit,
        )
        named = await people(session, (c.owner_id for c in customers))
        rows = [
            {
                "customer_no": c.customer_no,
                "name": c.name,
                "phone": grouped_phone(c.phone),
                "service_category": c.service_category or "",
                "contract_status": c.contract_status,
                "tone": STATUS_TONES.get(c.contract_status, "default"),
                "lead_level": c.lead_level or "",
                "owner": named.called(c.owner_id, "公海") if c.owner_id else "公海",
                "last_follow_up": beijing(c.last_follow_up_at),
                "created": beijing(c.created_at),
            }
            for c in customers
        ]
    pages = max(1, (total + query.limit - 1) // query.limit)
    context: dict[str, Any] = {
        "query": query,
        "values": query.values,
        "errors": query.errors,
        "rows": rows,
        "total": total,
        "pages": pages,
        "page_numbers": _page_numbers(query.page, pages),
        "choices": choices,
        "follow_up_statuses": [s.value for s in FollowUpStatus],
        "owners": [(owner.id, owner.name) for owner in owners],
        "sorts": [(s.value, label) for s, label in SORTS.items()],
        "page_sizes": PAGE_SIZES,
        "results_id": RESULTS_ID,
        "filtered": any(query.values.get(name) for name in _FILTER_NAMES),
    }
    status = 400 if query.errors else 200
    if request.headers.get("HX-Target") == RESULTS_ID and not request.headers.get(
        "HX-History-Restore-Request"
    ):
        fragment = render(request, "customers/results.html", status, **context)
        # The address bar shows the list's own URL, without the form's empty fields.
        fragment.headers["HX-Push-Url"] = query.url()
        return fragment
    return render_page(
        request, settings, user, "customers/list.html", active="customers", status_code=status,
        **context,
    )  # fmt: skip


_FILTER_NAMES = (
    "keyword",
    "leadSource",
    "serviceCategory",
    "contractStatus",
    "leadLevel",
    "followUpStatus",
    "assignedTo",
    "createdFrom",
    "createdTo",
)
_ALL_NAMES = (*_FILTER_NAMES, "sortBy", "sortOrder", "page", "limit")


def _read_query(request: Request, user: User) -> ListQuery:
    """The query string read leniently: a GET form sends every field, empty ones too, which
    mean "any"; a bad value is reported beside its field instead of the API's 422."""
    raw = request.query_params
    values = {name: raw.get(name, "").strip() for name in _ALL_NAMES}
    if not user.is_staff_manager:
        values["assignedTo"] = ""  # an advisor's list is its own whatever the URL says
    errors: dict[str, str] = {}
    digits = re.sub(r"[\s\-]", "", values["keyword"])
    if digits.isdigit():  # a phone typed grouped, `138 0013 8000`, is found as stored
        values["keyword"] = digits
    if len(values["keyword"]) > _KEYWORD_MAX:
        errors["keyword"] = f"搜索内容最多 {_KEYWORD_MAX} 个字符"
    if values["assignedTo"] and not OBJECT_ID_PATTERN.fullmatch(values["assignedTo"]):
        errors["assignedTo"] = "请从列表中选择负责人"
    follow_up = None
    if values["followUpStatus"]:
        try:
            follow_up = FollowUpStatus(values["followUpStatus"])
        except ValueError:
            errors["followUpStatus"] = "请从列表中选择"
    created_from = _day(values, "createdFrom", errors)
    created_to = _day(values, "createdTo", errors)
    if created_from and created_to and created_from > created_to:
        errors["createdTo"] = "结束日期不能早于开始日期"
    try:
        sort = SortField(values["sortBy"] or SortField.created_at)
    except ValueError:
        sort = SortField.created_at
    if sort not in SORTS:
        sort = SortField.created_at
    values["sortBy"] = "" if sort is SortField.created_at else sort.value
    descending = values["sortOrder"] != "asc"
    values["sortOrder"] = "" if descending else "asc"
    limit = _number(values["limit"], DEFAULT_PAGE_SIZE)
    if limit not in PAGE_SIZES:
        limit = DEFAULT_PAGE_SIZE
    values["limit"] = "" if limit == DEFAULT_PAGE_SIZE else str(limit)
    page = min(max(_number(values["page"], 1), 1), MAX_PAGE)
    values["page"] = "" if page == 1 else str(page)
    filters = replace(
        list_filters(
            contract_status=values["contractStatus"] or None,
            lead_source=values["leadSource"] or None,
            service_category=values["serviceCategory"] or None,
            lead_level=values["leadLevel"] or None,
            assigned_to=values["assignedTo"] or None,
            created_from=created_from,
            created_to=created_to,
            follow_up_status=follow_up,
        ),
        # The search box finds a fragment of the name, phone, WeChat id or customer number.
        keyword=values["keyword"] or None,
    )
    return ListQuery(values, filters, sort, descending, page, limit, errors)


def _day(values: dict[str, str], name: str, errors: dict[str, str]) -> date | None:
    text = values[name]
    if not text:
        return None
    try:
        return in_date_range(date.fromisoformat(text))
    except ValueError as wrong:
        errors[name] = DATE_RANGE_MESSAGE if "日期" in str(wrong) else "日期格式应为 2024-01-31"
        return None


def _number(text: str, default: int) -> int:
    return int(text) if text.isdigit() and len(text) <= 6 else default


def _page_numbers(page: int, pages: int) -> list[int | None]:
    """The page links to show: first, last and two either side of this one; None is a gap."""
    shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    numbers: list[int | None] = []
    for number in shown:
        if numbers and number - (numbers[-1] or 0) > 1:
            numbers.append(None)
        numbers.append(number)
    return numbers
