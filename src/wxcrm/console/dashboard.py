"""首页: the dashboard. Four cards against the previous period, the period's new customers
by status, by level and source, and by owner (a funnel), today's to-do and the health of
notifications; an advisor's counts are of its own customers and notifications only.

The period lives in the URL (`?period=today|week|month|30d`, or `?from=…&to=…`); htmx
re-renders only the dashboard region when it changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.console.display import beijing, wechat_error
from wxcrm.console.listing import pushed, read_dates
from wxcrm.console.notifications import EVENT_LABELS
from wxcrm.console.routing import console_router, render_page
from wxcrm.console.session import ConsoleUser
from wxcrm.console.templating import render
from wxcrm.core import clock
from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.settings import Settings
from wxcrm.customers import dashboard as stats
from wxcrm.customers.dashboard import PRESET_LABELS, Breakdown, Overview, Period, Preset
from wxcrm.notifications import service as notifications
from wxcrm.notifications.models import NotificationStatus
from wxcrm.notifications.repository import NotificationRepository
from wxcrm.users.models import Role, User
from wxcrm.users.repository import Person, UserRepository, people

DEFAULT_PRESET = Preset.today
# A custom range longer than this is refused: a year is the longest a manager compares.
MAX_DAYS = 366
TODO_ITEMS = 8
FAILED_ITEMS = 5
MAX_ADVISORS = 1000
# The region htmx re-renders when the period changes.
REGION_ID = "dashboard"
UNGRADED = "未分级"
POOL = "公海（未分配）"

router = console_router()


@dataclass
class PeriodQuery:
    """The period the URL asks for, the form's values, and what was wrong with them."""

    period: Period | None
    preset: Preset | None
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    def url(self) -> str:
        if self.preset is not None:
            return f"/?period={self.preset.value}"
        return "/?" + urlencode({"from": self.values["from"], "to": self.values["to"]})


@router.get("/")
async def home(
    request: Request, user: ConsoleUser, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """首页: the dashboard of the period in the URL."""
    today = clock.today()
    query = _read_period(request, today)
    context = await _context(session, settings, user, query, today)
    status = 400 if query.errors else 200
    # Not listing.wants_region: that sends the whole page for a bad value, whose message
    # stands outside a list's region; the dashboard's form is inside its region, so the
    # region alone carries the message.
    if request.headers.get("HX-Target") == REGION_ID and not request.headers.get(
        "HX-History-Restore-Request"
    ):
        return pushed(render(request, "dashboard/region.html", status, **context), query)
    return render_page(
        request, settings, user, "dashboard/page.html", active="home", status_code=status,
        **context,
    )  # fmt: skip


def _read_period(request: Request, today: date) -> PeriodQuery:
    """A custom range when either date is given, else a preset (an unknown one is the
    default). A bad date is told beside its field."""
    raw = request.query_params
    values = {name: raw.get(name, "").strip()[:40] for name in ("from", "to")}
    if not values["from"] and not values["to"]:
        try:
            preset = Preset(raw.get("period", ""))
        except ValueError:
            preset = DEFAULT_PRESET
        return PeriodQuery(Period.of(preset, today), preset, values)
    errors: dict[str, str] = {}
    first, last = read_dates(values, "from", "to", errors)
    # A list takes an empty date as no bound; a period needs both ends.
    for name, missing in (("from", "请选择开始日期"), ("to", "请选择结束日期")):
        if not values[name]:
            errors[name] = missing
    if first and last and first <= last and (last - first).days + 1 > MAX_DAYS:
        errors["to"] = f"自定义范围最长 {MAX_DAYS} 天"
    if errors or first is None or last is None:
        return PeriodQuery(None, None, values, errors)
    values = {"from": first.isoformat(), "to": last.isoformat()}
    return PeriodQuery(Period(first, last), None, values)


async def _context(
    session: AsyncSession, settings: Settings, user: User, query: PeriodQuery, today: date
) -> dict[str, Any]:
    period = query.period
    overview = await stats.overview(session, user, period) if period else None
    breakdown = await stats.breakdown(session, user, period) if period else None
    due_count, due = await stats.due_today(session, user, today, TODO_ITEMS)
    waiting = await stats.waiting(session, user, period, TODO_ITEMS) if period else []
    health = await _notification_health(session, user, today)
    advisors = await _advisors(session, user)
    named = await people(
        session,
        [
            *(breakdown.funnel if breakdown else ()),
            *(item.owner_id for item in (*due, *waiting)),
            *(row["advisor_id"] for row in health["failed"]),
        ],
    )
    named.update({advisor.id: advisor for advisor in advisors.values()})

    def who(owner_id: str | None) -> str:
        return named.called(owner_id, "—")

    for failure in health["failed"]:
        failure["advisor"] = who(failure["advisor_id"])

    context: dict[str, Any] = {
        "region_id": REGION_ID,
        "query": query,
        "values": query.values,
        "errors": query.errors,
        "presets": [
            (preset.value, label, f"/?period={preset.value}", preset == query.preset)
            for preset, label in PRESET_LABELS.items()
        ],
        "period": period,
        "previous": period.previous() if period else None,
        "managing": user.is_staff_manager,
        "due_count": due_count,
        "due": [
            {
                "id": item.customer_id,
                "name": item.name,
                "owner": who(item.owner_id),
                "time": beijing(item.at)[-5:],
            }
            for item in due
        ],
        "waiting": [
            {
                "id": item.customer_id,
                "name": item.name,
                "owner": who(item.owner_id),
                "created": beijing(item.at),
                "status": item.follow_up_status,
            }
            for item in waiting
        ],
        "health": health,
    }
    if overview is not None and breakdown is not None:
        context |= {
            "cards": _cards(overview, due_count),
            "waiting_count": overview.waiting.current,
            "new_count": overview.new.current,
            **_breakdown_context(settings, breakdown, user, advisors, who),
        }
    return context


async def _advisors(session: AsyncSession, user: User) -> dict[str, Person]:
    """Who has a funnel row even without customers this period: for a manager, every active
    advisor; for an advisor, itself."""
    if not user.is_staff_manager:
        return {user.id: Person(user.id, user.name, user.username)}
    accounts = await UserRepository(session).active(MAX_ADVISORS)
    return {
        account.id: Person(account.id, account.name, account.username)
        for account in accounts
        if account.role == Role.advisor
    }


@dataclass(frozen=True)
class Card:
    key: str
    label: str
    change: stats.Change
    hint: str = ""
    # 待跟进 is better falling: its arrow up is the bad news.
    rising_is_good: bool = True

    @property
    def tone(self) -> str:
        if not self.change.delta:
            return "flat"
        return "good" if (self.change.delta > 0) == self.rising_is_good else "bad"


def _cards(overview: Overview, due_today: int) -> list[Card]:
    return [
        Card("total", "客户总数", overview.total, "截至统计区间末"),
        Card("new", "本期新增", overview.new),
        Card("signed", "已签约", overview.signed, "本期签约"),
        Card(
            "waiting",
            "待跟进",
            overview.waiting,
            f"本期新增未跟进 · 今日到期跟进 {due_today} 位",
            rising_is_good=False,
        ),
    ]


def _ordered(present: Any, configured: list[str]) -> list[Any]:
    """The configured values that occur, in their configured order, then any others."""
    known = [value for value in configured if value in present]
    others = sorted((value for value in present if value not in configured), key=str)
    return known + others


def _breakdown_context(
    settings: Settings,
    breakdown: Breakdown,
    user: User,
    advisors: dict[str, Person],
    who: Callable[[str | None], str],
) -> dict[str, Any]:
    # Every configured level has its column, customers or not: the same columns each period.
    by_level = breakdown.by_level
    others = _ordered({lv for lv in by_level if lv is not None}, settings.lead_levels)
    levels = [*settings.lead_levels, *(lv for lv in others if lv not in settings.lead_levels)]
    level_keys: list[str | None] = [*levels, *([None] if None in by_level else [])]
    level_names = [UNGRADED if lv is None else lv for lv in level_keys]
    sources = _ordered(breakdown.by_source_level, settings.lead_sources)
    source_rows = [
        {
            "source": source,
            "counts": [breakdown.by_source_level[source].get(lv, 0) for lv in level_keys],
            "total": breakdown.by_source[source],
        }
        for source in sources
    ]
    statuses = _ordered(breakdown.by_status, settings.contract_statuses)
    new_total = sum(breakdown.by_status.values())
    status_rows = [
        {
            "status": status,
            "count": breakdown.by_status[status],
            "share": _percent(breakdown.by_status[status], new_total),
        }
        for status in statuses
    ]
    # Every advisor a manager leads has a row, customers or not; the pool's comes last.
    funnel = dict(breakdown.funnel)
    for advisor_id in advisors:
        funnel.setdefault(advisor_id, stats.OwnerFunnel(advisor_id))
    if not user.is_staff_manager:
        funnel = {user.id: funnel.get(user.id, stats.OwnerFunnel(user.id))}
    owners = sorted(
        (owner for owner in funnel if owner is not None),
        key=lambda owner: (-funnel[owner].leads, who(owner), owner),
    )
    funnel_rows = [
        {
            "name": POOL if owner is None else who(owner),
            "pool": owner is None,
            "leads": funnel[owner].leads,
            "levels": [funnel[owner].levels.get(lv, 0) for lv in level_keys],
            "signed": funnel[owner].signed,
            "conversion": _rate(funnel[owner].conversion),
        }
        for owner in [*owners, *([None] if None in funnel else [])]
    ]
    return {
        "level_names": level_names,
        "level_totals": [by_level.get(lv, 0) for lv in level_keys],
        "source_rows": source_rows,
        "status_rows": status_rows,
        "funnel_rows": funnel_rows,
        "charts": {
            "levels": {
                "sources": sources,
                "series": [
                    {"name": name, "data": [row["counts"][n] for row in source_rows]}
                    for n, name in enumerate(level_names)
                ],
            },
            "status": {"items": [{"name": r["status"], "value": r["count"]} for r in status_rows]},
            "funnel": {
                "owners": [row["name"] for row in funnel_rows],
                "leads": [row["leads"] for row in funnel_rows],
                "signed": [row["signed"] for row in funnel_rows],
            },
        },
    }


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "—"


def _rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1%}"


async def _notification_health(session: AsyncSession, user: User, today: date) -> dict[str, Any]:
    """The outbox as this user may see it: what waits to be sent, what failed, what failed
    today (queued today) and the newest of those. Managers read the health check's backlog;
    an advisor counts its own."""

    advisor_id = None if user.is_staff_manager else user.id
    backlog = await NotificationRepository(session).backlog(advisor_id=advisor_id)
    failed, failed_today = await notifications.page_for(
        session,
        user,
        status=NotificationStatus.failed.value,
        advisor_id=None,
        event=None,
        offset=0,
        limit=FAILED_ITEMS,
        created_from=clock.day_start(today),
        created_before=clock.day_start(today + timedelta(days=1)),
    )
    day = today.isoformat()
    return {
        "backlog": backlog[NotificationStatus.pending.value]
        + backlog[NotificationStatus.sending.value],
        "failed_total": backlog[NotificationStatus.failed.value],
        "failed_today": failed_today,
        "failed_url": "/notifications?"
        + urlencode({"status": NotificationStatus.failed.value, "dateFrom": day, "dateTo": day}),
        "failed": [
            {
                "id": n.id,
                "advisor_id": n.advisor_id,
                "event": EVENT_LABELS.get(n.event, n.event),
                "time": beijing(n.updated_at),
                "error": wechat_error(n.last_errcode, n.last_errmsg) or "发送失败",
            }
            for n in failed
        ],
    }
