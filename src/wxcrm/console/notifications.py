"""通知: the delivery log, each message's attempts, retry; advisors' subscriptions.

Over the same rules as /api/notifications: an advisor sees only its own notifications
(another's is as good as missing, 404), and only managers and admins retry one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.console.display import beijing, wechat_error
from wxcrm.console.listing import ListQuery, pushed, read_dates, read_page, wants_region
from wxcrm.console.routing import console_router, done, object_id, render_page
from wxcrm.console.session import ConsoleUser
from wxcrm.console.templating import render
from wxcrm.core.clock import day_start
from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.errors import AppError, Forbidden
from wxcrm.core.ids import OBJECT_ID_PATTERN
from wxcrm.core.settings import Settings
from wxcrm.customers import reminders
from wxcrm.customers.pool.service import WARNING_EVENT
from wxcrm.notifications import service
from wxcrm.notifications.models import Notification, NotificationAttempt, NotificationStatus
from wxcrm.notifications.repository import NotificationRepository
from wxcrm.notifications.subscriptions import subscriptions_of
from wxcrm.notifications.templates import Template, TemplateName, template
from wxcrm.users.models import User
from wxcrm.users.repository import UserRepository, people
from wxcrm.users.schemas import ROLE_LABELS, wire_role
from wxcrm.wechat.keywords import UnfittableValue

# The service's words for a notification that is not there (or is another advisor's).
NOT_FOUND = "通知不存在"
STATUS_LABELS = {
    NotificationStatus.pending.value: "待发送",
    NotificationStatus.sending.value: "发送中",
    NotificationStatus.sent.value: "已发送",
    NotificationStatus.failed.value: "失败",
    NotificationStatus.skipped.value: "已跳过",
}
STATUS_TONES = {
    NotificationStatus.pending.value: "blue",
    NotificationStatus.sending.value: "blue",
    NotificationStatus.sent.value: "green",
    NotificationStatus.failed.value: "red",
    NotificationStatus.skipped.value: "grey",
}
# What each attempt came to: the status the worker gave the row after it.
OUTCOME_LABELS = {
    NotificationStatus.sent.value: "发送成功",
    NotificationStatus.failed.value: "失败",
    NotificationStatus.pending.value: "失败，稍后重试",
    NotificationStatus.skipped.value: "未发送（跳过）",
}
EVENT_LABELS = {
    "customer_assigned": "客户分配",
    "customer_action": "客户动态",
    reminders.EVENT: "跟进提醒",
    WARNING_EVENT: "回收预警",
}
TEMPLATE_LABELS = {
    TemplateName.customer_action: "客户动态",
    TemplateName.customer_assigned: "客户分配",
    TemplateName.follow_up_reminder: "跟进提醒",
}
# The template values' names, as people read them.
VALUE_LABELS = {
    "title": "标题",
    "time": "时间",
    "phone": "电话",
    "customer_name": "客户",
    "reason": "原因",
    "assigner": "分配人",
    "count": "数量",
    "date": "日期",
}
CHANNEL_LABELS = {"direct": "直接发送", "cloud": "云函数"}
MANAGERS_ONLY = "只有主管和管理员可以查看顾问订阅"
RETRIED = "已重新加入发送队列"
MAX_ADVISORS = 1000
# The region htmx re-renders when the filters or the page change.
RESULTS_ID = "notification-results"
_FILTER_NAMES = ("status", "event", "advisorId", "dateFrom", "dateTo")
# Payload keys never shown whole (masked) or never shown at all.
_MASKED = ("openid",)
_HIDDEN = ("token", "secret", "password", "key")

router = console_router()


@dataclass(kw_only=True)
class LogQuery(ListQuery):
    """The log's query, with the days its date filter reads."""

    path: str = "/notifications"
    day_from: date | None = None
    day_to: date | None = None


@router.get("/notifications")
async def notification_log(
    request: Request, user: ConsoleUser, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """发送记录: every message queued, filtered by status, event, advisor and date."""
    query = _read_query(request.query_params, user)
    advisors = await UserRepository(session).active(MAX_ADVISORS) if user.is_staff_manager else []
    chosen = query.values["advisorId"]
    if chosen and not any(advisor.id == chosen for advisor in advisors):
        query.errors.setdefault("advisorId", "请从列表中选择顾问")
    rows: list[dict[str, Any]] = []
    total = 0
    if not query.errors:
        day_from, day_to = query.day_from, query.day_to
        notifications, total = await service.page_for(
            session,
            user,
            status=query.values["status"] or None,
            advisor_id=chosen or None,
            event=query.values["event"] or None,
            offset=query.offset,
            limit=query.limit,
            created_from=day_start(day_from) if day_from else None,
            created_before=day_start(day_to + timedelta(days=1)) if day_to else None,
        )
        named = await people(session, (n.advisor_id for n in notifications))
        rows = [_row(n, named.called(n.advisor_id, "—")) for n in notifications]
    context: dict[str, Any] = {
        "query": query,
        "rows": rows,
        "pager": query.pager(total),
        "statuses": list(STATUS_LABELS.items()),
        "events": list(EVENT_LABELS.items()),
        "advisors": [(advisor.id, advisor.name or advisor.username) for advisor in advisors],
        "results_id": RESULTS_ID,
        "tab": "log",
        "managing": user.is_staff_manager,
    }
    status = 400 if query.errors else 200
    if wants_region(request, RESULTS_ID, query):
        return pushed(render(request, "notifications/results.html", status, **context), query)
    return render_page(
        request, settings, user, "notifications/list.html",
        active="notifications", status_code=status, **context,
    )  # fmt: skip


@router.get("/notifications/advisors")
async def advisor_subscriptions(
    request: Request, user: ConsoleUser, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """顾问订阅 (managers and admins): each account's bound WeChat, the sends each template
    still has, when it last subscribed and when it was last sent a message."""
    if not user.is_staff_manager:
        raise Forbidden(MANAGERS_ONLY)
    page, limit = read_page(request.query_params)
    query = ListQuery(path="/notifications/advisors", values={}, page=page, limit=limit)
    accounts, total = await UserRepository(session).page(
        search=None, role=None, active=True, offset=query.offset, limit=query.limit
    )
    specs = [template(settings, name) for name in TemplateName]
    rows = await _advisor_rows(session, accounts, specs)
    return render_page(
        request, settings, user, "notifications/advisors.html", active="notifications",
        rows=rows, templates=[(TEMPLATE_LABELS[s.name], s) for s in specs],
        query=query, pager=query.pager(total), tab="advisors", managing=True,
    )  # fmt: skip


@router.get("/notifications/{notification_id}")
async def notification_detail(
    request: Request,
    notification_id: str,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
) -> HTMLResponse:
    """One message: what it says, every delivery attempt, and 重试 for a failed one."""
    return await _detail_page(request, settings, session, user, notification_id)


@router.post("/notifications/{notification_id}/retry")
async def retry_notification(
    request: Request,
    notification_id: str,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """重试: back in the queue, due now (managers and admins, as the API)."""
    if not user.is_staff_manager:
        raise Forbidden()
    notification_id = object_id(notification_id, NOT_FOUND)
    try:
        await service.retry(session, notification_id, user)
    except AppError as refused:
        if refused.status_code == 404:
            raise
        return await _detail_page(
            request, settings, session, user, notification_id,
            refusal=refused.message, status_code=refused.status_code,
        )  # fmt: skip
    return done(request, f"/notifications/{notification_id}", RETRIED)


async def _detail_page(
    request: Request,
    settings: Settings,
    session: AsyncSession,
    user: User,
    notification_id: str,
    *,
    refusal: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    notification_id = object_id(notification_id, NOT_FOUND)
    repository = NotificationRepository(session)
    notification = service.visible(await repository.get(notification_id), user)
    attempts = await repository.attempts(notification.id)
    named = await people(session, [notification.advisor_id])
    row = _row(notification, named.called(notification.advisor_id, "—"))
    return render_page(
        request, settings, user, "notifications/detail.html",
        active="notifications", status_code=status_code,
        row=row, notification=notification,
        channel=CHANNEL_LABELS.get(notification.channel, notification.channel),
        scheduled=beijing(notification.scheduled_at), sent=beijing(notification.sent_at),
        fields=_template_fields(settings, notification),
        details=_details(notification.payload),
        attempts=[_attempt(a) for a in attempts],
        can_retry=user.is_staff_manager and notification.status in service.RETRYABLE,
        refusal=refusal,
    )  # fmt: skip


def _row(notification: Notification, advisor: str) -> dict[str, Any]:
    customer_id, customer_name = _customer(notification.payload)
    return {
        "id": notification.id,
        "created": beijing(notification.created_at),
        "event": EVENT_LABELS.get(notification.event, notification.event),
        "advisor": advisor,
        "customer_id": customer_id,
        "customer_name": customer_name,
        "status": notification.status,
        "status_label": STATUS_LABELS.get(notification.status, notification.status),
        "tone": STATUS_TONES.get(notification.status, "default"),
        "attempts": notification.attempts,
        "error": wechat_error(notification.last_errcode, notification.last_errmsg),
        "skip_reason": notification.skip_reason or "",
        "fold_count": notification.fold_count,
    }


def _customer(payload: Mapping[str, Any]) -> tuple[str | None, str]:
    """The customer a message is about, as its payload names it: the id the mini-program
    page opens (a direct message) or the cloud function's data."""
    values = payload.get("values")
    name = values.get("customer_name") if isinstance(values, Mapping) else None
    customer_id = None
    page = payload.get("page")
    if isinstance(page, str):
        ids = parse_qs(urlsplit(page).query).get("id")
        customer_id = ids[0] if ids else None
    event = payload.get("event")
    data = event.get("notificationData") if isinstance(event, Mapping) else None
    if isinstance(data, Mapping):
        customer_id = customer_id or data.get("customerId")
        name = name or data.get("customerName")
    if not isinstance(customer_id, str) or not OBJECT_ID_PATTERN.fullmatch(customer_id):
        customer_id = None
    return customer_id, str(name) if name else ""


def _template_fields(settings: Settings, notification: Notification) -> list[dict[str, str]]:
    """The template's keywords with the values the message carries, fitted as they are sent
    (by the current field map)."""
    payload = notification.payload
    values = payload.get("values")
    try:
        spec: Template | None = template(settings, TemplateName(str(payload.get("template"))))
    except ValueError:
        spec = None
    if spec is None or not isinstance(values, Mapping):
        return []
    try:
        fitted = spec.data(values)
    except UnfittableValue:
        fitted = {}
    return [
        {
            "label": VALUE_LABELS.get(name, name),
            "keyword": key,
            "value": fitted.get(key, {}).get("value", _shown(name, values.get(name, ""))),
        }
        for name, key in spec.fields.items()
    ]


def _details(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The rest of the payload, flattened: an openid masked, anything like a token left out."""
    shown: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
            return
        lowered = prefix.lower()
        if any(word in lowered for word in _HIDDEN):
            return
        shown.append((prefix, _shown(prefix, value)))

    for key, value in payload.items():
        if key not in ("values", "template"):
            walk(key, value)
    return shown


def _shown(name: str, value: Any) -> str:
    text = "" if value is None else str(value)
    return mask_openid(text) if any(word in name.lower() for word in _MASKED) else text


def mask_openid(openid: str | None) -> str:
    """`o-demo-advisor1` as `o-de…sor1`: enough to tell two apart, not to use one."""
    if not openid:
        return ""
    if len(openid) <= 8:
        return f"{openid[:2]}…"
    return f"{openid[:4]}…{openid[-4:]}"


def _attempt(attempt: NotificationAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "started": beijing(attempt.started_at),
        "outcome": OUTCOME_LABELS.get(attempt.outcome, attempt.outcome),
        "tone": STATUS_TONES.get(attempt.outcome, "default"),
        "errcode": "" if attempt.errcode is None else str(attempt.errcode),
        "errmsg": attempt.errmsg or "",
        "http_status": "" if attempt.http_status is None else str(attempt.http_status),
    }


async def _advisor_rows(
    session: AsyncSession, accounts: Sequence[User], specs: Sequence[Template]
) -> list[dict[str, Any]]:
    ids = [account.id for account in accounts]
    subscriptions = await subscriptions_of(session, ids)
    last_sent = await NotificationRepository(session).last_sent(ids)
    rows = []
    for account in accounts:
        own = {s.template_id: s for s in subscriptions if s.advisor_id == account.id}
        times = [s.subscribe_time for s in own.values() if s.subscribe_time is not None]
        credits = []
        for spec in specs:
            if not spec.template_id:
                credits.append("未配置")
            elif spec.long_term:
                credits.append("长期")
            else:
                subscription = own.get(spec.template_id)
                credits.append(str(subscription.credits if subscription else 0))
        rows.append(
            {
                "name": account.name or account.username,
                "username": account.username,
                "role": ROLE_LABELS[wire_role(account.role)],
                "openid": mask_openid(account.openid),
                "credits": credits,
                "subscribed": beijing(max(times)) if times else "",
                "sent": beijing(last_sent.get(account.id)),
            }
        )
    return rows


def _read_query(params: Mapping[str, str], user: User) -> LogQuery:
    """The query string read leniently (listing's rules)."""
    values = {name: params.get(name, "").strip() for name in _FILTER_NAMES}
    if not user.is_staff_manager:
        values["advisorId"] = ""  # an advisor's log is its own whatever the URL says
    errors: dict[str, str] = {}
    if values["status"] and values["status"] not in STATUS_LABELS:
        errors["status"] = "请从列表中选择状态"
    if values["event"] and values["event"] not in EVENT_LABELS:
        errors["event"] = "请从列表中选择事件"
    if values["advisorId"] and not OBJECT_ID_PATTERN.fullmatch(values["advisorId"]):
        errors["advisorId"] = "请从列表中选择顾问"
    day_from, day_to = read_dates(values, "dateFrom", "dateTo", errors)
    page, limit = read_page(params)
    return LogQuery(
        values=values, page=page, limit=limit, errors=errors, day_from=day_from, day_to=day_to
    )
