"""公海: the pool's cards and list; claim (advisor), assign (manager).

Over the same services as /api/customers/public-pool and /api/customers/public-pool/assign:
the same list (an advisor sees only what it could claim), the same claim limits, the same
assignment rules. The cards and the list are one region, re-rendered after every action, so
a claim's row leaves the list and the counts change with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Form, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.console import refusals
from wxcrm.console.display import beijing, grouped_phone
from wxcrm.console.listing import (
    ListQuery,
    check_choices,
    customer_choices,
    pushed,
    read_page,
    read_search,
    wants_region,
)
from wxcrm.console.routing import console_router, done, render_page, toast
from wxcrm.console.session import ConsoleUser, page_csrf
from wxcrm.console.templating import render
from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.errors import Forbidden, ValidationFailed
from wxcrm.core.ids import is_object_id
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.customers.assignment import service as assignment
from wxcrm.customers.assignment.schemas import MAX_REASON
from wxcrm.customers.batch import Failure
from wxcrm.customers.pool import service as pool
from wxcrm.customers.pool.schemas import MAX_CLAIM
from wxcrm.customers.pool.summary import arrivals_since
from wxcrm.customers.schemas import MAX_BATCH
from wxcrm.users.models import Role, User
from wxcrm.users.repository import UserRepository

MAX_ADVISORS = 1000
# Refused customers named one by one after an action; more are counted.
MAX_LISTED = 20
# A refused customer the manager cannot see (gone meanwhile) is named so.
UNSEEN = "客户"
# The region htmx re-renders: the cards, the batch bar and the list.
REGION_ID = "pool-region"
FILTER_NAMES = ("search", "leadSource", "serviceCategory", "leadLevel")
# The two assign dialogs: the ticked rows, and one row's 分配.
DIALOGS = {"batch": "assign-batch", "one": "assign-one"}

PICK_ROWS = "请先勾选要分配的客户"
PICK_ADVISOR = "请选择要分配给的顾问"
BAD_ROWS = "所选客户无效，请刷新页面后重试"
PICK_CLAIM = "请选择要领取的客户"

router = console_router()


# -- the query in the URL -------------------------------------------------------------------


@dataclass(kw_only=True)
class PoolQuery(ListQuery):
    """The pool list's query, read into the pool's filters."""

    path: str = "/pool"

    @property
    def filters(self) -> pool.PoolFilters:
        return pool.PoolFilters(
            search=self.values["search"] or None,
            lead_source=self.values["leadSource"] or None,
            service_category=self.values["serviceCategory"] or None,
            lead_level=self.values["leadLevel"] or None,
        )


def read_query(params: Mapping[str, str], settings: Settings) -> PoolQuery:
    """The query string read leniently (listing's rules)."""
    values = {name: params.get(name, "").strip() for name in FILTER_NAMES}
    errors: dict[str, str] = {}
    read_search(values, "search", errors)
    check_choices(values, _choices(settings), errors)
    page, limit = read_page(params)
    return PoolQuery(values=values, page=page, limit=limit, errors=errors)


def _back(back: str, settings: Settings) -> PoolQuery:
    """The list an action came from: only its query is read, never a path."""
    return read_query(dict(parse_qsl(back.lstrip("?"))), settings)


def _choices(settings: Settings) -> dict[str, list[str]]:
    """The pool's filter lists: a pool customer has no contract to filter by."""
    choices = customer_choices(settings)
    del choices["contractStatus"]
    return choices


# -- what an action says --------------------------------------------------------------------


@dataclass
class Notice:
    """An action's outcome shown above the list: its message and each refused customer."""

    message: str
    error: bool = False
    refused: list[str] = field(default_factory=list)


@dataclass
class AssignForm:
    """An assign dialog's values and its refusals, by field (`ids`, `assignedTo`, `reason`)."""

    dialog: str = "batch"
    ids: list[str] = field(default_factory=list)
    assigned_to: str = ""
    reason: str = ""
    customer_name: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def dialog_id(self) -> str:
        return DIALOGS[self.dialog]


# -- the pages ------------------------------------------------------------------------------


@router.get("/pool")
async def pool_page(
    request: Request, user: ConsoleUser, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """公海: the cards, the filters and the list; the region alone for htmx."""
    query = read_query(request.query_params, settings)
    status = 400 if query.errors else 200
    if wants_region(request, REGION_ID, query):
        region = await _page(
            request, session, settings, user, query, region_only=True, status_code=status
        )
        return pushed(region, query)
    return await _page(request, session, settings, user, query, status_code=status)


@router.post("/pool/claim")
async def claim(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
    ids: Annotated[list[str] | None, Form()] = None,
    back: Annotated[str, Form()] = "",
) -> Response:
    """领取: take customers from the pool for oneself, within the claim limits."""
    query = _back(back, settings)
    wanted = list(dict.fromkeys(ids or []))
    problem = _claim_problem(wanted)
    if problem:
        return await _answer(
            request, session, settings, user, query, Notice(problem, error=True), 400
        )
    result = await pool.claim(session, settings, user, wanted)
    if not result.failed:
        message = f"领取成功：{len(result.done)} 个客户已归入我的客户"
        return await _answer(request, session, settings, user, query, Notice(message))
    notice = Notice(
        f"领取完成：成功 {len(result.done)} 个，失败 {len(result.failed)} 个"
        if result.done
        else f"领取失败：{result.failed[0].message}",
        error=True,
        refused=_grouped(result.failed) if len(wanted) > 1 else [],
    )
    # Nothing claimed: the claim was refused (409, as the API's single-customer refusals).
    return await _answer(
        request, session, settings, user, query, notice, 200 if result.done else 409
    )


@router.post("/pool/assign")
async def assign(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
    ids: Annotated[list[str] | None, Form()] = None,
    assigned_to: Annotated[str, Form(alias="assignedTo")] = "",
    reason: Annotated[str, Form()] = "",
    dialog: Annotated[str, Form()] = "batch",
    back: Annotated[str, Form()] = "",
) -> Response:
    """分配 (managers): move pool customers to an active advisor; a bad value is told
    beside its field in the dialog, shown again, and nothing moves."""
    if not user.is_staff_manager:
        raise Forbidden()  # as the API's assign route
    query = _back(back, settings)
    form = AssignForm(
        dialog=dialog if dialog in DIALOGS else "batch",
        ids=list(dict.fromkeys(ids or [])),
        assigned_to=assigned_to.strip(),
        reason=reason.strip(),
    )
    if not form.ids:
        form.errors["ids"] = PICK_ROWS
    elif len(form.ids) > MAX_BATCH or not all(is_object_id(i) for i in form.ids):
        form.errors["ids"] = BAD_ROWS
    if not form.assigned_to:
        form.errors["assignedTo"] = PICK_ADVISOR
    elif not is_object_id(form.assigned_to):
        form.errors["assignedTo"] = "请从列表中选择顾问"
    if len(form.reason) > MAX_REASON:
        form.errors["reason"] = f"分配原因不能超过{MAX_REASON}字"
    moved: assignment.Assignment | None = None
    if not form.errors:
        try:
            moved = await assignment.assign_to(
                session,
                settings,
                customer_ids=form.ids,
                assigned_to=form.assigned_to,
                by=user,
                reason=form.reason or None,
                channel=assignment.AssignChannel.pool,
            )
        except ValidationFailed as wrong:  # no such active advisor: beside its field
            form.errors["assignedTo"] = wrong.message
    if moved is None:
        return await _refused_form(request, session, settings, user, query, form)
    result = moved.result
    count = f"分配完成：成功 {len(result.done)} 个，失败 {len(result.failed)} 个"
    if not result.failed:
        notice = Notice(count)
    else:
        named = await refusals.failures(session, user, result.failed[:MAX_LISTED], unseen=UNSEEN)
        refused = [f"{label}：{message}" for label, message in named]
        if len(result.failed) > MAX_LISTED:
            refused.append(f"另有 {len(result.failed) - MAX_LISTED} 个客户未分配")
        notice = Notice(count, error=True, refused=refused)
    return await _answer(request, session, settings, user, query, notice)


# -- rendering ------------------------------------------------------------------------------


async def _answer(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    user: User,
    query: PoolQuery,
    notice: Notice,
    status_code: int = 200,
) -> Response:
    """An action's answer: for htmx the region again, with the notice above the list and as
    a toast; for a plain form a redirect (success) or the whole page (refusal)."""
    if request.headers.get("HX-Request"):
        response = await _page(
            request, session, settings, user, query,
            region_only=True, notice=notice, status_code=status_code,
        )  # fmt: skip
        return toast(response, notice.message, "error" if notice.error else "success")
    if status_code < 300 and not notice.error:
        return done(request, query.url(), notice.message)
    return await _page(
        request, session, settings, user, query, notice=notice, status_code=status_code
    )


async def _refused_form(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    user: User,
    query: PoolQuery,
    form: AssignForm,
) -> Response:
    """The dialog's form again with its messages (400): for htmx the form alone, put back
    where it was; otherwise the page with the dialog open and its rows still ticked."""
    if form.dialog == "one" and form.ids and is_object_id(form.ids[0]):
        form.customer_name = await refusals.label(session, user, form.ids[0], unseen=UNSEEN)
    if request.headers.get("HX-Request"):
        context = {
            "frame": {"csrf": page_csrf(request, settings)[0]},
            "form": form,
            "advisors": await _advisors(session),
            "back": query.query(),
        }
        response = render(request, "pool/assign_form.html", 400, **context)
        response.headers["HX-Retarget"] = f"#{form.dialog_id}-form"
        response.headers["HX-Reswap"] = "outerHTML"
        return response
    return await _page(request, session, settings, user, query, form=form, status_code=400)


async def _page(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    user: User,
    query: PoolQuery,
    *,
    region_only: bool = False,
    notice: Notice | None = None,
    form: AssignForm | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The pool page, or (for htmx) its region alone: the frame is already in the browser."""
    context = await _context(session, settings, user, query, notice=notice, form=form)
    if region_only:
        context["frame"] = {"csrf": page_csrf(request, settings)[0]}
        return render(request, "pool/region.html", status_code, **context)
    return render_page(
        request, settings, user, "pool/list.html",
        active="pool", status_code=status_code, **context,
    )  # fmt: skip


async def _context(
    session: AsyncSession,
    settings: Settings,
    user: User,
    query: PoolQuery,
    *,
    notice: Notice | None,
    form: AssignForm | None = None,
) -> dict[str, Any]:
    """What the region shows: the cards, the rows of this page, why 领取 is off if it is, and
    for managers the assign dialogs (`form`: one refused, shown open again)."""
    manager = user.is_staff_manager
    rows: list[dict[str, Any]] = []
    total = 0
    if not query.errors:
        customers, total = await pool.list_pool(
            session, user, query.filters, offset=query.offset, limit=query.limit
        )
        rows = [
            {
                "id": c.id,
                "customer_no": c.customer_no,
                "name": c.name,
                "phone": grouped_phone(c.phone) or c.wechat_id or "",
                "service_category": c.service_category or "",
                "lead_source": c.lead_source,
                "lead_level": c.lead_level or "",
                "entered": beijing(c.pool_entered_at),
                "reason": c.pool_entry_reason or "",
                "claim_count": c.claim_count or 0,
                "frozen": c.is_frozen,
            }
            for c in customers
        ]
    pool_size = total
    if query.filtered or query.errors:
        _, pool_size = await pool.list_pool(session, user, pool.PoolFilters(), offset=0, limit=0)
    now = utcnow()
    cards: dict[str, Any] = {
        "pool_size": pool_size,
        "daily_limit": settings.pool_daily_claim_limit,
        "cap": settings.pool_holding_cap,
        "cooling_days": f"{settings.pool_cooling_days:g}",
        "recycle_days": f"{settings.pool_recycle_after_days:g}",
        "warning_days": f"{settings.pool_recycle_warning_days:g}",
    }
    blocked = None
    if manager:
        arrivals = await arrivals_since(session, pool.day_start(now))
        cards |= {"entered_today": arrivals.entered, "recycled_today": arrivals.recycled}
    else:
        holding = await pool.holding(session, user.id)
        claimed = await pool.claims_today(session, user.id, now)
        left = max(settings.pool_daily_claim_limit - claimed, 0)
        cards |= {"holding": holding, "claimed_today": claimed, "claims_left": left}
        cards["cap_reached"] = holding >= settings.pool_holding_cap
        # The service would refuse every claim now: say so before anyone tries.
        if cards["cap_reached"]:
            blocked = (
                f"已达持有客户上限（{holding} / {settings.pool_holding_cap}），"
                "释放或签约部分客户后才能再领取"
            )
        elif left == 0:
            blocked = f"今日领取已达上限（每日 {settings.pool_daily_claim_limit} 个），明天再来领取"
    return {
        "query": query,
        "choices": _choices(settings),
        "rows": rows,
        "pager": query.pager(total),
        "region_id": REGION_ID,
        "cards": cards,
        "manager": manager,
        "blocked": blocked,
        "notice": notice,
        "back": query.query(),
        "advisors": await _advisors(session) if manager else [],
        "forms": {
            name: form if form and form.dialog == name else AssignForm(dialog=name)
            for name in DIALOGS
        },
        "ticked": set(form.ids) if form and form.dialog == "batch" else set(),
    }


async def _advisors(session: AsyncSession) -> list[tuple[str, str]]:
    """Who customers may be assigned to: active advisors (the service refuses anyone else)."""
    users = await UserRepository(session).active(MAX_ADVISORS)
    return [
        (u.id, f"{u.name}（{u.username}）" if u.name != u.username else u.name)
        for u in users
        if u.role == Role.advisor.value
    ]


def _claim_problem(ids: Sequence[str]) -> str | None:
    if not ids:
        return PICK_CLAIM
    if len(ids) > MAX_CLAIM:
        return f"一次最多领取 {MAX_CLAIM} 个客户"
    return None if all(is_object_id(i) for i in ids) else BAD_ROWS


def _grouped(failures: Sequence[Failure]) -> list[str]:
    """Refusals of a claim by reason: an advisor may not see the customers it did not get."""
    counts: dict[str, int] = {}
    for failure in failures:
        counts[failure.message] = counts.get(failure.message, 0) + 1
    return [f"{count} 个客户：{message}" for message, count in counts.items()]
