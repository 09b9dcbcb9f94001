"""The rules behind the mini program's endpoints: login, verified phones, advisors'
subscriptions, customer actions that become leads and notify the advisor, and sending a
subscribe message at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.db import Database, dialect_insert
from wxcrm.core.errors import BadRequest, UpstreamWeChatError, ValidationFailed
from wxcrm.core.ids import new_id
from wxcrm.core.models import utcnow
from wxcrm.core.phones import normalize_phone
from wxcrm.core.security import create_token
from wxcrm.core.settings import Settings
from wxcrm.customers.leads import WantedLead, create_or_link_leads
from wxcrm.customers.models import Customer, CustomerAction
from wxcrm.miniprogram.models import MiniProgramUser
from wxcrm.miniprogram.schemas import (
    ActionType,
    AdvisorSubscribeIn,
    CustomerActionIn,
    MessageSendIn,
)
from wxcrm.notifications.delivery import NO_SUBSCRIPTION
from wxcrm.notifications.models import AdvisorSubscription
from wxcrm.notifications.notify import Message, Recipient, tell_advisors
from wxcrm.notifications.subscriptions import record_decision, spend_credit, zero_credits
from wxcrm.notifications.templates import TemplateName
from wxcrm.users.models import Role, User
from wxcrm.users.repository import UserRepository
from wxcrm.wechat.client import LoginSession, WeChatClient
from wxcrm.wechat.errors import WeChatError, wechat_failure
from wxcrm.wechat.keywords import UnfittableValue, fit_template_data

log = structlog.get_logger(__name__)

_ACTIONS = cast(Table, CustomerAction.__table__)
# What the advisor's notification says, per action, for a new and for a known customer.
TITLES: dict[ActionType, tuple[str, str]] = {
    ActionType.view_resume: ("新客户查看了您的简历", "客户查看了您的简历"),
    ActionType.contact_advisor: ("新客户想要联系您", "客户想要联系您"),
    ActionType.book_service: ("新客户预约了您的服务", "客户预约了您的服务"),
}
# What a message says in place of a customer's own details, when the advisor may not see them
# (another advisor's customer or the pool's) or there is no customer at all.
HIDDEN_PHONE = "已隐藏"
NO_PHONE = "未留电话"
ANONYMOUS_NAME = "微信客户"
CUSTOMER_PAGE = "pages/customer/detail"
ACTION_NAMES = {
    ActionType.view_resume: "查看顾问简历",
    ActionType.contact_advisor: "联系顾问",
    ActionType.book_service: "预约服务",
}


async def record_login(session: AsyncSession, login: LoginSession) -> None:
    now = utcnow()
    await session.execute(
        dialect_insert(session, MiniProgramUser)
        .values(openid=login.openid, unionid=login.unionid, first_seen_at=now, last_login_at=now)
        .on_conflict_do_update(
            index_elements=["openid"],
            set_={"last_login_at": now, "unionid": login.unionid},
        )
    )


def issue_session_token(settings: Settings, openid: str) -> tuple[str, int]:
    lifetime = timedelta(minutes=settings.miniprogram_token_minutes)
    token = create_token(settings.signing_key(), openid, "miniprogram", lifetime)
    return token, int(lifetime.total_seconds())


# -- verified phone -----------------------------------------------------------------------------


async def verify_phone(session: AsyncSession, wechat: WeChatClient, openid: str, code: str) -> str:
    try:
        number = await wechat.get_user_phone_number(code)
    except WeChatError as error:
        raise wechat_failure(error, "手机号授权 code 无效或已过期，请重新授权") from error
    phone = normalize_phone(number.pure_phone_number)
    if phone is None or number.country_code not in ("", "86"):
        raise BadRequest("仅支持中国大陆手机号")
    now = utcnow()
    await session.execute(
        dialect_insert(session, MiniProgramUser)
        .values(
            openid=openid,
            verified_phone=phone,
            phone_verified_at=now,
            first_seen_at=now,
            last_login_at=now,
        )
        .on_conflict_do_update(
            index_elements=["openid"], set_={"verified_phone": phone, "phone_verified_at": now}
        )
    )
    return phone


# -- advisors' subscriptions --------------------------------------------------------------------


async def save_subscription(
    session: AsyncSession, settings: Settings, advisor: User, body: AdvisorSubscribeIn
) -> AdvisorSubscription:
    if advisor.openid is not None and advisor.openid != body.openid:
        raise ValidationFailed.on_field("openid", "openid 与当前顾问绑定的微信不一致")
    status = body.subscribe_data.subscription_status if body.subscribe_data else None
    accepted = body.subscribed and status in (None, "accept", "acceptWithAudio")
    # When WeChat pushes subscription events to us, they are what counts: a client's own
    # report then records the state but adds no credit, so a forged report gives none.
    push_is_authority = bool(settings.wechat_push_token.get_secret_value())
    data = body.subscribe_data.model_dump(by_alias=True) if body.subscribe_data else None
    return await record_decision(
        session,
        advisor_id=advisor.id,
        template_id=body.template_id,
        openid=body.openid,
        accepted=accepted,
        add_credit=accepted and not push_is_authority,
        data=data,
    )


# -- sending a subscribe message at once ---------------------------------------------------------


async def send_subscribe_message(
    session: AsyncSession,
    database: Database,
    settings: Settings,
    wechat: WeChatClient,
    body: MessageSendIn,
) -> str:
    """Send a subscribe message now, values fitted first, and spend the advisor's send;
    returns WeChat's msgid."""
    try:
        data = fit_template_data({key: item.value for key, item in body.data.items()})
    except UnfittableValue as error:
        raise ValidationFailed.on_field(f"data.{error.key}", error.message) from error
    long_term = body.template_id in settings.wechat_long_term_templates
    # WeChat first, the database after: no transaction is open while we wait on WeChat.
    try:
        sent = await wechat.send_subscribe_message(
            touser=body.touser,
            template_id=body.template_id,
            data=data,
            page=body.page,
            miniprogram_state=body.miniprogram_state or settings.miniprogram_state,
            lang=body.lang or settings.wechat_lang,
        )
    except WeChatError as error:
        if error.errcode == NO_SUBSCRIPTION:
            await _no_sends_left(database, body.touser, body.template_id)
        raise UpstreamWeChatError(
            f"发送订阅消息失败：{error.errmsg}",
            {"errcode": error.errcode, "errmsg": error.errmsg},
        ) from error
    advisor = await UserRepository(session).by_openid(body.touser)
    if advisor is not None and not long_term:
        await spend_credit(session, advisor.id, body.template_id)
    return sent.msgid


async def _no_sends_left(database: Database, openid: str, template_id: str) -> None:
    """43101: the advisor with this openid has no sends left. Recorded in a transaction of
    its own, as the request itself fails (and rolls its own back)."""
    async with database.writer() as session:
        advisor = await UserRepository(session).by_openid(openid)
        if advisor is not None:
            await zero_credits(session, advisor.id, template_id)
            await session.commit()


# -- customer actions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionRequest:
    """One customer action to record: `openid` sent it, proven by a session token when
    `verified`; the client's address and user agent as the request came."""

    settings: Settings
    openid: str
    verified: bool
    body: CustomerActionIn
    client_ip: str | None
    client_user_agent: str | None


@dataclass(frozen=True)
class RecordedAction:
    action: ActionRow
    # The customer the action was recorded against, when this WeChat user may see it (see
    # `_is_theirs`; never an unverified caller); None otherwise, even though the action is
    # linked to it.
    customer: Customer | None
    created: bool


async def record_customer_action(session: AsyncSession, request: ActionRequest) -> RecordedAction:
    """Record one action in the caller's transaction (`record_customer_actions`)."""
    outcome = (await record_customer_actions(session, [request]))[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def record_customer_actions(
    session: AsyncSession, requests: Sequence[ActionRequest]
) -> list[RecordedAction | Exception]:
    """Record each action, in order, as one after the other would, in a handful of
    statements for the lot (group commit hands in those waiting together).

    An unverified caller (anonymous actions) still makes its lead and tells the advisor, but
    borrows nothing proven to that openid (its verified phone) and is shown no customer. An
    action for an advisor that is no active advisor is refused, and writes nothing.
    """
    advisors = await _active_advisors(session, {r.body.advisor_id for r in requests})
    accepted = [r for r in requests if r.body.advisor_id in advisors]
    verified_phones = await _verified_phones(session, {r.openid for r in accepted if r.verified})

    wanted = {index: _wanted_lead(r, verified_phones) for index, r in enumerate(accepted)}
    wanted_leads = [(index, lead) for index, lead in wanted.items() if lead is not None]
    made = await create_or_link_leads(session, [lead for _, lead in wanted_leads])
    leads = dict(zip([index for index, _ in wanted_leads], made, strict=True))

    seen: list[_Seen] = []
    for index, request in enumerate(accepted):
        advisor = advisors[request.body.advisor_id]
        if not request.verified:
            # Tells operators whether the mini program still sends actions without a token.
            log.info("customer action without a session token", advisor_id=advisor.id)
        lead = leads.get(index)
        customer = lead.customer if lead else None
        if customer is None and request.body.customer_record_id:
            customer = await _own_customer_record(
                session, request.body.customer_record_id, request.openid
            )
        seen.append(_Seen(request, advisor, customer, bool(lead and lead.created), verified_phones))

    if not seen:
        return [_no_advisor() for _ in requests]
    # The messages first, so each action is written once, already saying whether it notified
    # (a process has one settings: the first request's serve the batch).
    queued = await tell_advisors(session, requests[0].settings, [_message(s) for s in seen])
    actions = [_action(s, notified=not q.skipped) for s, q in zip(seen, queued, strict=True)]
    # Core, not the ORM: nothing reads the rows back, and a unit of work per row cost more
    # than the statement.
    await session.execute(insert(_ACTIONS), [vars(a) for a in actions])

    recorded = iter(
        RecordedAction(action, s.customer if s.theirs else None, s.created)
        for s, action in zip(seen, actions, strict=True)
    )
    return [next(recorded) if r.body.advisor_id in advisors else _no_advisor() for r in requests]


def _no_advisor() -> ValidationFailed:
    return ValidationFailed.on_field("advisorId", "顾问不存在或已停用")


@dataclass(frozen=True)
class _Seen:
    """An accepted action, with what was found or made for it."""

    request: ActionRequest
    advisor: User
    customer: Customer | None
    created: bool
    verified_phones: dict[str, str]

    @property
    def theirs(self) -> bool:
        # Anyone can type anyone's phone number: the action still belongs with that
        # customer, but the customer's record goes back only to the WeChat user who is that
        # customer.
        return (
            self.request.verified
            and self.customer is not None
            and (
                self.created
                or _is_theirs(
                    self.customer,
                    self.request.openid,
                    self.verified_phones.get(self.request.openid),
                )
            )
        )

    @property
    def shown_to_advisor(self) -> bool:
        # Its name and phone only to the advisor who owns it (a new lead is that advisor's).
        return self.customer is not None and (
            self.created or self.customer.owner_id == self.advisor.id
        )


async def _active_advisors(session: AsyncSession, ids: set[str]) -> dict[str, User]:
    users = await session.scalars(
        select(User).where(
            User.id.in_(sorted(ids)), User.role == Role.advisor.value, User.is_active.is_(True)
        )
    )
    return {user.id: user for user in users}


async def _verified_phones(session: AsyncSession, openids: set[str]) -> dict[str, str]:
    if not openids:
        return {}
    rows = await session.execute(
        select(MiniProgramUser.openid, MiniProgramUser.verified_phone).where(
            MiniProgramUser.openid.in_(sorted(openids)),
            MiniProgramUser.verified_phone.is_not(None),
        )
    )
    return {openid: phone for openid, phone in rows if phone is not None}


def _is_theirs(customer: Customer, openid: str, verified_phone: str | None) -> bool:
    """Whether this WeChat user is the customer: its lead was made by this openid (the lead
    keeps its openid), or WeChat verified to this openid the customer's phone."""
    return customer.openid == openid or (
        verified_phone is not None and customer.phone == verified_phone
    )


def _wanted_lead(request: ActionRequest, verified_phones: dict[str, str]) -> WantedLead | None:
    body = request.body
    verified_phone = verified_phones.get(request.openid) if request.verified else None
    typed = normalize_phone(body.customer_phone) if body.customer_phone else None
    # A number WeChat verified stands in for a typed one, and vouches for an equal one.
    phone = typed or verified_phone
    if phone is None:
        return None
    remark = f"小程序自动创建：客户{ACTION_NAMES[body.action_type]}（{body.action_type.value}）"
    return WantedLead(
        phone=phone,
        name=body.customer_name,
        openid=request.openid,
        advisor_id=body.advisor_id,
        remark=remark,
        verified=phone == verified_phone,
    )


async def _own_customer_record(
    session: AsyncSession, customer_id: str, openid: str
) -> Customer | None:
    # Only a record of this very WeChat user: a client cannot attach actions to others.
    customer = await session.get(Customer, customer_id)
    return customer if customer is not None and customer.openid == openid else None


def _message(seen: _Seen) -> Message:
    """The advisor's message about this action, folded with repeats of one customer towards
    one advisor inside the fold window; when nothing can be sent the row is written
    skipped, saying why.

    The customer's name and phone are in it only when the advisor may see them; otherwise
    it says that a customer acted and no more, and opens no customer's page.
    """
    request, customer, advisor = seen.request, seen.customer, seen.advisor
    action_type = request.body.action_type
    new_title, known_title = TITLES[action_type]
    if customer is not None and seen.shown_to_advisor:
        phone, name = customer.phone, customer.name
        page = f"{CUSTOMER_PAGE}?id={customer.id}"
    else:
        # No page of a customer the advisor could not open anyway.
        phone = HIDDEN_PHONE if customer is not None else NO_PHONE
        name, page = ANONYMOUS_NAME, CUSTOMER_PAGE
    window = request.settings.notify_fold_window_minutes
    return Message(
        Recipient(advisor.id, advisor.openid),
        event="customer_action",
        template=TemplateName.customer_action,
        values={
            "title": new_title if seen.created else known_title,
            "time": utcnow().isoformat(),
            "phone": phone,
            "customer_name": name,
        },
        page=page,
        details={"openid": request.openid, "actionType": action_type.value},
        fold_key=f"customer_action:{advisor.id}:{request.openid}",
        fold_window=timedelta(minutes=window) if window > 0 else None,
    )


@dataclass(frozen=True)
class ActionRow:
    """A customer action as written (the columns of `CustomerAction`)."""

    id: str
    openid: str
    advisor_id: str
    action_type: str
    action_data: dict[str, Any]
    customer_record_id: str | None
    resume_id: str | None
    ip: str | None
    user_agent: str | None
    customer_info: dict[str, Any] | None
    client_timestamp: str | None
    notified: bool
    created_at: datetime


def _action(seen: _Seen, *, notified: bool) -> ActionRow:
    request, body = seen.request, seen.request.body
    return ActionRow(
        id=new_id(),
        openid=request.openid,
        advisor_id=seen.advisor.id,
        action_type=body.action_type.value,
        action_data=body.action_data,
        customer_record_id=seen.customer.id if seen.customer else None,
        resume_id=body.resume_id or _text(body.action_data.get("resumeId")),
        ip=body.ip or request.client_ip,
        user_agent=(body.user_agent or request.client_user_agent or "")[:512] or None,
        customer_info=body.customer_info,
        client_timestamp=str(body.timestamp) if body.timestamp is not None else None,
        notified=notified,
        created_at=utcnow(),
    )


def _text(value: Any) -> str | None:
    return str(value)[:64] if isinstance(value, str | int) else None
