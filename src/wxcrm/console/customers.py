"""客户列表: the console's customer list, over the API's list (same filters, same query, same
visibility: an advisor sees only its own customers); its batch and row actions (assign,
release to the pool) and the export of what it shows, through the API's own services."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from annotated_types import MaxLen
from fastapi import Form, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.console import refusals
from wxcrm.console.display import beijing, contract_tone, grouped_phone
from wxcrm.console.listing import (
    ListQuery,
    check_choices,
    customer_choices,
    pushed,
    read_dates,
    read_page,
    read_search,
    wants_region,
)
from wxcrm.console.routing import console_router, done, render_page
from wxcrm.console.session import ConsoleUser, page_csrf
from wxcrm.console.templating import render
from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.errors import Forbidden
from wxcrm.core.ids import OBJECT_ID_PATTERN, is_object_id
from wxcrm.core.settings import Settings
from wxcrm.customers.assignment import service as assignment
from wxcrm.customers.assignment.schemas import MAX_REASON
from wxcrm.customers.batch import Failure, Refusal
from wxcrm.customers.pool import service as pool
from wxcrm.customers.pool.schemas import ReleaseIn
from wxcrm.customers.records import service
from wxcrm.customers.records.deps import list_filters
from wxcrm.customers.records.filters import CustomerFilters, FollowUpStatus
from wxcrm.customers.records.schemas import SortField
from wxcrm.customers.schemas import MAX_BATCH
from wxcrm.customers.transfer import service as transfer
from wxcrm.customers.transfer.download import export_download
from wxcrm.customers.transfer.service import FileFormat
from wxcrm.users.models import Role, User
from wxcrm.users.repository import UserRepository, people

MAX_OWNERS = 1000
SORTS = {
    SortField.created_at: "创建时间",
    SortField.updated_at: "更新时间",
    SortField.last_follow_up_at: "最后跟进",
}
# The region htmx re-renders when the filters or the page change.
RESULTS_ID = "customer-results"
# The release's reason is held to the API's own limit: ReleaseIn.reason's max_length.
RELEASE_REASON_MAX = next(
    rule.max_length
    for rule in ReleaseIn.model_fields["reason"].metadata
    if isinstance(rule, MaxLen)
)
EXPORT_FORMATS = {kind.value: kind for kind in FileFormat}
# A failed customer the caller may not see (or that is gone) is not named.
UNSEEN = "已不存在或无权查看的客户"

router = console_router()


@dataclass(kw_only=True)
class CustomerQuery(ListQuery):
    """The list's query (its values the filters and the sort), read into the API's filters."""

    path: str = "/customers"
    filters: CustomerFilters
    sort: SortField
    descending: bool

    @property
    def filtered(self) -> bool:
        return any(self.values.get(name) for name in _FILTER_NAMES)

    def export_url(self, kind: str) -> str:
        """The export of every customer this list's filters find (not only this page)."""
        kept = {k: v for k, v in self.values.items() if v and k in _FILTER_NAMES}
        return f"/customers/export?{urlencode({'format': kind, **kept})}"


@dataclass
class Listing:
    """A list request read and checked: the query, the filters' choices, the owners offered."""

    query: CustomerQuery
    choices: dict[str, list[str]]
    owners: Sequence[User]


@dataclass
class ActionForm:
    """A dialog's form as posted (assign or release; for the ticked rows or one row), and
    what was wrong with it: by field, or a message with the customers refused and why."""

    action: str  # "assign" | "release"
    scope: str = "batch"  # "batch": the ticked rows; "row": one row's action
    ids: list[str] = field(default_factory=list)
    label: str = ""  # the one row's customer, by name
    assigned_to: str = ""
    reason: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    open: bool = False

    @property
    def dialog_id(self) -> str:
        return f"{self.scope}-{self.action}-dialog"

    @property
    def url(self) -> str:
        return f"/customers/batch-{self.action}"

    @property
    def title(self) -> str:
        if self.action == "assign":
            return "批量分配客户" if self.scope == "batch" else "分配客户"
        return "批量释放到公海" if self.scope == "batch" else "释放到公海"


@dataclass
class Report:
    """What a batch did when some customers were refused: shown above the list."""

    message: str
    failures: list[tuple[str, str]] = field(default_factory=list)


@router.get("/customers")
async def customer_list(
    request: Request, user: ConsoleUser, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """客户列表: search, filters, sort and pages, all in the URL."""
    listing = await _listing(session, settings, user, _read_query(request.query_params, user))
    region_only = wants_region(request, RESULTS_ID, listing.query)
    return await _list_page(request, session, settings, user, listing, region_only=region_only)


@router.get("/customers/export", response_model=None)
async def export_customers(
    request: Request, user: ConsoleUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """导出: every customer the list's filters find (an advisor's own only), as CSV or XLSX,
    built by the API's export; bad filters show the list with their messages instead."""
    listing = await _listing(session, settings, user, _read_query(request.query_params, user))
    kind = EXPORT_FORMATS.get(request.query_params.get("format", ""))
    if kind is None or listing.query.errors:
        report = None if kind else Report("导出格式应为 CSV 或 Excel（xlsx）")
        return await _list_page(
            request, session, settings, user, listing, report=report, status_code=400
        )
    content = await transfer.export_file(session, user, listing.query.filters, kind)
    return export_download(content, kind)


@router.post("/customers/batch-assign", response_model=None)
async def batch_assign(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
    ids: Annotated[list[str] | None, Form()] = None,
    assigned_to: Annotated[str, Form(alias="assignedTo")] = "",
    reason: Annotated[str, Form()] = "",
    scope: Annotated[str, Form()] = "batch",
    back: Annotated[str, Form()] = "",
) -> Response:
    """批量分配, and a row's 分配: the customers to one active advisor (managers only, as
    POST /api/customers/batch-assign)."""
    if not user.is_staff_manager:
        raise Forbidden()
    form = _action_form("assign", scope, ids, reason)
    form.assigned_to = assigned_to.strip()
    advisor: User | assignment.AssigneeProblem = assignment.AssigneeProblem.missing
    if not form.assigned_to:
        form.errors["assignedTo"] = "请选择要分配给的顾问"
    else:
        if is_object_id(form.assigned_to):
            advisor = await assignment.find_assignee(session, form.assigned_to)
        if isinstance(advisor, assignment.AssigneeProblem):
            form.errors["assignedTo"] = f"{advisor.value}，请重新选择"
    if len(form.reason) > MAX_REASON:
        form.errors["reason"] = f"分配原因不能超过 {MAX_REASON} 个字"
    # The list to go back to; its owners are loaded only if it is shown again.
    query = _read_query(_back_params(back), user)
    if form.errors or isinstance(advisor, assignment.AssigneeProblem):
        return await _refused(request, session, settings, user, query, form, 400)
    channel = (
        assignment.AssignChannel.console if form.scope == "row" else assignment.AssignChannel.batch
    )
    moved = await assignment.assign(
        session,
        settings,
        customer_ids=form.ids,
        to=advisor,
        by=user,
        reason=form.reason or None,
        channel=channel,
    )
    count = len(moved.result.done)
    return await _outcome(
        request, session, settings, user, query, form, count, moved.result.failed,
        success=f"已分配 {count} 个客户给 {advisor.name}", verb="分配",
    )  # fmt: skip


@router.post("/customers/batch-release", response_model=None)
async def batch_release(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
    ids: Annotated[list[str] | None, Form()] = None,
    reason: Annotated[str, Form()] = "",
    scope: Annotated[str, Form()] = "batch",
    back: Annotated[str, Form()] = "",
) -> Response:
    """批量释放, and a row's 释放: the customers to the public pool with a reason (advisors
    their own, unsigned, unfrozen ones, as POST /api/customers/batch-release-to-pool)."""
    form = _action_form("release", scope, ids, reason)
    if not form.reason:
        form.errors["reason"] = "请填写释放原因"
    elif len(form.reason) > RELEASE_REASON_MAX:
        form.errors["reason"] = f"释放原因不能超过 {RELEASE_REASON_MAX} 个字"
    query = _read_query(_back_params(back), user)
    if form.errors:
        return await _refused(request, session, settings, user, query, form, 400)
    result = await pool.release(session, settings, user, form.ids, form.reason)
    count = len(result.done)
    return await _outcome(
        request, session, settings, user, query, form, count, result.failed,
        success=f"已释放 {count} 个客户到公海", verb="释放",
    )  # fmt: skip


# -- the list ------------------------------------------------------------------------------


async def _listing(
    session: AsyncSession, settings: Settings, user: User, query: CustomerQuery
) -> Listing:
    """The list's query, its choices checked against the settings and the staff: what the
    list shows and what the export writes are the same customers."""
    choices = customer_choices(settings)
    check_choices(query.values, choices, query.errors)
    # The owner filter, for those who see everyone's customers: active staff by name.
    owners = await UserRepository(session).active(MAX_OWNERS) if user.is_staff_manager else []
    if query.values.get("assignedTo") and not any(
        owner.id == query.values["assignedTo"] for owner in owners
    ):
        query.errors.setdefault("assignedTo", "请从列表中选择负责人")
    return Listing(query, choices, owners)


async def _list_page(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    user: User,
    listing: Listing,
    *,
    region_only: bool = False,
    form: ActionForm | None = None,
    report: Report | None = None,
    status_code: int | None = None,
) -> HTMLResponse:
    """The list page (or, for htmx, its results region), with `form`'s dialog open when an
    action was refused, or `report` above the list when a batch was only partly done."""
    query = listing.query
    rows: list[dict[str, Any]] = []
    total = 0
    if not query.errors:
        customers, total = await service.list_customers(
            session,
            user,
            query.filters,
            sort=query.sort,
            descending=query.descending,
            offset=query.offset,
            limit=query.limit,
        )
        named = await people(session, (c.owner_id for c in customers))
        rows = [
            {
                "id": c.id,
                "customer_no": c.customer_no,
                "name": c.name,
                "phone": grouped_phone(c.phone),
                "service_category": c.service_category or "",
                "contract_status": c.contract_status,
                "tone": contract_tone(c.contract_status),
                "lead_level": c.lead_level or "",
                "owner": named.called(c.owner_id, "公海"),
                "last_follow_up": beijing(c.last_follow_up_at),
                "created": beijing(c.created_at),
                # Offered where the pool's release rule lets this user release it; the
                # service decides all the same.
                "releasable": pool.may_release(user, c, settings),
            }
            for c in customers
        ]
    context: dict[str, Any] = {
        "query": query,
        "rows": rows,
        "pager": query.pager(
            total, at_least=query.filters.searches_text and total > service.SEARCH_TOTAL_BOUND
        ),
        "choices": listing.choices,
        "follow_up_statuses": [s.value for s in FollowUpStatus],
        "owners": [(owner.id, owner.name) for owner in listing.owners],
        "sorts": [(s.value, label) for s, label in SORTS.items()],
        "results_id": RESULTS_ID,
        "is_manager": user.is_staff_manager,
        "is_admin": user.is_admin,
        "advisors": _advisors(listing.owners),
        "forms": _dialogs(user, form),
        "ticked": set(form.ids) if form and form.scope == "batch" else set(),
        "report": report,
        "back": query.url(),
    }
    status = status_code or (400 if query.errors else 200)
    if region_only:
        csrf, _ = page_csrf(request, settings)
        region = render(request, "customers/results.html", status, csrf=csrf, **context)
        return pushed(region, query)
    return render_page(
        request, settings, user, "customers/list.html", active="customers", status_code=status,
        **context,
    )  # fmt: skip


def _dialogs(user: User, opened: ActionForm | None) -> list[ActionForm]:
    """The page's action dialogs, empty, but for the one an action was refused in."""
    actions = ["assign", "release"] if user.is_staff_manager else ["release"]
    forms = [ActionForm(action, scope) for action in actions for scope in ("batch", "row")]
    if opened is not None:
        forms = [opened if f.dialog_id == opened.dialog_id else f for f in forms]
    return forms


def _advisors(staff: Iterable[User]) -> list[tuple[str, str]]:
    """Whom customers may be given to: active advisors (assignment's own rule)."""
    return [(user.id, user.name) for user in staff if user.role == Role.advisor.value]


# -- actions -------------------------------------------------------------------------------


def _action_form(action: str, scope: str, ids: list[str] | None, reason: str) -> ActionForm:
    """The posted form, its customers checked: each id once, well formed, within a batch."""
    form = ActionForm(action, "row" if scope == "row" else "batch", reason=reason.strip())
    form.ids = list(dict.fromkeys(i.strip() for i in ids or [] if i.strip()))
    if not form.ids:
        form.errors["ids"] = "请先勾选客户" if form.scope == "batch" else "请从列表中选择客户"
    elif len(form.ids) > MAX_BATCH or not all(is_object_id(i) for i in form.ids):
        form.errors["ids"] = "所选客户有误，请刷新页面后重新选择"
        form.ids = []
    return form


async def _outcome(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    user: User,
    query: CustomerQuery,
    form: ActionForm,
    count: int,
    failed: Sequence[Failure],
    *,
    success: str,
    verb: str,
) -> Response:
    """After a batch: all done, back to the list as it was with a toast; none done, the
    dialog again with each refusal; some done, the list with the refusals above it."""
    if count and not failed:
        return done(request, query.url(), success)
    failures = await refusals.failures(session, user, failed, unseen=UNSEEN)
    if not count:
        form.message = f"没有客户被{verb}："
        form.failures = failures
        status = 404 if all(f.code is Refusal.NOT_FOUND for f in failed) else 409
        return await _refused(request, session, settings, user, query, form, status)
    report = Report(f"{verb}完成：成功 {count} 个，失败 {len(failures)} 个。", failures)
    listing = await _listing(session, settings, user, query)
    response = await _list_page(
        request, session, settings, user, listing, report=report, status_code=200
    )
    if request.headers.get("HX-Request"):
        # The whole list again (owners changed), in place of the page the dialog was on.
        response.headers["HX-Retarget"] = "body"
        response.headers["HX-Reswap"] = "innerHTML"
        response.headers["HX-Push-Url"] = query.url()
    return response


async def _refused(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    user: User,
    query: CustomerQuery,
    form: ActionForm,
    status_code: int,
) -> HTMLResponse:
    """The dialog's form again with its messages, nothing changed: for htmx the form alone
    (swapped into its open dialog); otherwise the list with the dialog open."""
    form.open = True
    if form.scope == "row" and form.ids:
        names = await refusals.names(session, user, form.ids)
        form.label = names.get(form.ids[0], ("", ""))[0]
    listing = await _listing(session, settings, user, query)
    if request.headers.get("HX-Request"):
        csrf, _ = page_csrf(request, settings)
        return render(
            request, "customers/action_form.html", status_code,
            form=form, csrf=csrf, back=listing.query.url(), advisors=_advisors(listing.owners),
        )  # fmt: skip
    return await _list_page(
        request, session, settings, user, listing, form=form, status_code=status_code
    )


def _back_params(back: str) -> dict[str, str]:
    """The list an action came from: only the query of a /customers URL is read, so the
    answer never leads anywhere else."""
    parts = urlsplit(back)
    if parts.scheme or parts.netloc or parts.path != "/customers":
        return {}
    return dict(parse_qsl(parts.query))


# -- reading the query ------------------------------------------------------------------


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
    # The staff mini program's names for the assignment dates ("assignedTo" is the owner).
    "assignedStartDate",
    "assignedEndDate",
)
_QUERY_NAMES = (*_FILTER_NAMES, "sortBy", "sortOrder")


def _read_query(params: Mapping[str, str], user: User) -> CustomerQuery:
    """The query string read leniently (listing's rules), into the API's filters."""
    values = {name: params.get(name, "").strip() for name in _QUERY_NAMES}
    if not user.is_staff_manager:
        values["assignedTo"] = ""  # an advisor's list is its own whatever the URL says
    errors: dict[str, str] = {}
    read_search(values, "keyword", errors)
    if values["assignedTo"] and not OBJECT_ID_PATTERN.fullmatch(values["assignedTo"]):
        errors["assignedTo"] = "请从列表中选择负责人"
    follow_up = None
    if values["followUpStatus"]:
        try:
            follow_up = FollowUpStatus(values["followUpStatus"])
        except ValueError:
            errors["followUpStatus"] = "请从列表中选择"
    created_from, created_to = read_dates(values, "createdFrom", "createdTo", errors)
    assigned_from, assigned_to = read_dates(values, "assignedStartDate", "assignedEndDate", errors)
    try:
        sort = SortField(values["sortBy"] or SortField.created_at)
    except ValueError:
        sort = SortField.created_at
    if sort not in SORTS:
        sort = SortField.created_at
    values["sortBy"] = "" if sort is SortField.created_at else sort.value
    descending = values["sortOrder"] != "asc"
    values["sortOrder"] = "" if descending else "asc"
    page, limit = read_page(params)
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
        assigned_from=assigned_from,
        assigned_to=assigned_to,
    )
    return CustomerQuery(
        values=values, page=page, limit=limit, errors=errors,
        filters=filters, sort=sort, descending=descending,
    )  # fmt: skip
