"""The endpoints the mini program calls, shapes and messages as the original system's."""

from __future__ import annotations

from fastapi import APIRouter, Request

from wxcrm.core.db import DatabaseDep, SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.envelope import Envelope
from wxcrm.core.errors import BadRequest, Forbidden
from wxcrm.core.logging import identify_caller
from wxcrm.core.ratelimit import RateLimiterDep
from wxcrm.customers.models import Customer
from wxcrm.miniprogram import service
from wxcrm.miniprogram.deps import ActionCallerDep, ActionRecorderDep, CurrentOpenid
from wxcrm.miniprogram.schemas import (
    ActionCustomerOut,
    ActionOut,
    AdvisorSubscribeIn,
    CustomerActionIn,
    CustomerActionOut,
    MessageSendIn,
    MessageSentOut,
    OpenidIn,
    OpenidOut,
    PhoneIn,
    PhoneOut,
    SubscriptionOut,
)
from wxcrm.users.deps import CurrentManager, CurrentUser
from wxcrm.wechat.deps import WeChatDep, exchange_login_code

router = APIRouter(prefix="/api", tags=["mini program"])

ACTION_RECORDED = "记录客户行为成功"


@router.post("/wechat/openid")
async def get_openid(
    body: OpenidIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    wechat: WeChatDep,
    limiter: RateLimiterDep,
) -> Envelope[OpenidOut]:
    """Exchange a wx.login code for the openid and a session token for the other calls."""
    ip = limiter.client_ip(request)
    await limiter.hit(limiter.rules.wechat_login_per_ip, ip)
    async with limiter.failures_counted(
        (limiter.rules.code_failures_per_ip, ip), failure=BadRequest
    ):
        login = await exchange_login_code(wechat, body.code)
    identify_caller(openid=login.openid)
    await service.record_login(session, login)
    token, expires_in = service.issue_session_token(settings, login.openid)
    return Envelope[OpenidOut](
        data=OpenidOut(openid=login.openid, token=token, expires_in=expires_in),
        message="获取openid成功",
    )


@router.post("/wechat/phone")
async def verified_phone(
    body: PhoneIn,
    request: Request,
    openid: CurrentOpenid,
    session: SessionDep,
    wechat: WeChatDep,
    limiter: RateLimiterDep,
) -> Envelope[PhoneOut]:
    """A phone number WeChat verified (getPhoneNumber), kept for this user's next actions."""
    ip = limiter.client_ip(request)
    await limiter.hit(limiter.rules.phone_per_openid, openid)
    async with limiter.failures_counted(
        (limiter.rules.code_failures_per_ip, ip), failure=BadRequest
    ):
        phone = await service.verify_phone(session, wechat, openid, body.code)
    return Envelope[PhoneOut](
        data=PhoneOut(phone_number=phone, verified=True), message="获取手机号成功"
    )


@router.post("/advisor/subscribe")
async def advisor_subscribe(
    body: AdvisorSubscribeIn, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> Envelope[SubscriptionOut]:
    """Save an advisor's answer to a subscribe-message prompt (its own staff token)."""
    if body.advisor_id != user.id:
        raise Forbidden("只能保存自己的订阅状态")
    subscription = await service.save_subscription(session, settings, user, body)
    data = SubscriptionOut(
        id=subscription.id,
        advisor_id=subscription.advisor_id,
        openid=subscription.openid,
        template_id=subscription.template_id,
        subscribed=subscription.subscribed,
        subscribe_time=subscription.subscribe_time,
        credits=subscription.credits,
    )
    return Envelope[SubscriptionOut](data=data, message="保存订阅状态成功")


@router.post("/customer/action")
async def customer_action(
    body: CustomerActionIn,
    request: Request,
    caller: ActionCallerDep,
    record: ActionRecorderDep,
    settings: SettingsDep,
    limiter: RateLimiterDep,
) -> Envelope[CustomerActionOut]:
    """Record what a customer did; a valid new phone number makes a lead (no duplicates)."""
    ip = limiter.client_ip(request)
    # Without a token (MINIPROGRAM_ANONYMOUS_ACTIONS) the caller is who its body says.
    openid = caller.openid or body.customer_id
    await limiter.hit(limiter.rules.action_per_openid, openid)
    await limiter.hit(limiter.rules.action_per_ip, ip)
    if body.customer_id != openid:
        raise Forbidden("customerId 与当前登录的微信用户不一致")
    recorded = await record(
        service.ActionRequest(
            settings=settings,
            openid=openid,
            verified=caller.verified,
            body=body,
            client_ip=ip,
            client_user_agent=request.headers.get("user-agent"),
        )
    )
    if not caller.verified:
        # Anyone can send any customerId: the answer is the same whatever the phone typed,
        # whether it made a lead or found a customer.
        data = CustomerActionOut(
            action_id=recorded.action.id,
            customer_created=None,
            customer_id=None,
            action=_action_out(recorded.action, shown=False),
            customer=None,
        )
        return Envelope[CustomerActionOut](data=data, message=ACTION_RECORDED)
    message = "记录客户行为成功，已创建新客户线索" if recorded.created else ACTION_RECORDED
    customer = recorded.customer
    data = CustomerActionOut(
        action_id=recorded.action.id,
        customer_created=recorded.created,
        customer_id=customer.id if customer else None,
        action=_action_out(recorded.action, shown=customer is not None),
        customer=_customer_out(customer) if customer else None,
    )
    return Envelope[CustomerActionOut](data=data, message=message)


@router.post("/message/send")
async def send_message(
    body: MessageSendIn,
    user: CurrentManager,
    session: SessionDep,
    database: DatabaseDep,
    settings: SettingsDep,
    wechat: WeChatDep,
) -> Envelope[MessageSentOut]:
    """Send a subscribe message now (admins and managers); values are fitted first."""
    msgid = await service.send_subscribe_message(session, database, settings, wechat, body)
    # WeChat's msgid is a number on the wire; the client keeps it as text.
    number = int(msgid) if msgid.isdigit() else msgid
    return Envelope[MessageSentOut](
        data=MessageSentOut(errcode=0, errmsg="ok", msgid=number), message="发送订阅消息成功"
    )


def _action_out(action: service.ActionRow, *, shown: bool) -> ActionOut:
    # The record's id only to whoever may see the record: it would confirm to a stranger
    # that the phone they typed is a customer's.
    return ActionOut(
        id=action.id,
        customer_id=action.openid,
        advisor_id=action.advisor_id,
        action_type=action.action_type,
        customer_record_id=action.customer_record_id if shown else None,
        notified=action.notified,
    )


def _customer_out(customer: Customer) -> ActionCustomerOut:
    return ActionCustomerOut(
        id=customer.id,
        name=customer.name,
        phone=customer.phone,
        lead_source=customer.lead_source,
        customer_no=customer.customer_no,
    )
