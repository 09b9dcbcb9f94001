"""Delivering one notification by its channel, and what the outcome means for its row.

What WeChat's answers mean is wechat/errors.py's table: token errors were already retried
once by the client; transient ones are rescheduled with backoff until the attempts run out;
permanent ones fail the row at once, keeping the errcode (43101 also zeroes the advisor's
credits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.notifications.models import NotificationStatus
from wxcrm.notifications.outbox import Channel
from wxcrm.notifications.templates import TemplateName, template
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.errors import NO_RETRY, ErrorKind, RetryPolicy, WeChatError
from wxcrm.wechat.keywords import UnfittableValue

NO_SUBSCRIPTION = 43101


@dataclass
class Delivery:
    """A claimed row, and what claiming it resolved."""

    id: str
    event: str
    channel: str
    advisor_id: str | None
    template_id: str | None
    payload: dict[str, Any]
    attempts: int
    openid: str | None = None
    credit_reserved: bool = False


@dataclass(frozen=True)
class Outcome:
    status: NotificationStatus
    msgid: str | None = None
    errcode: int | None = None
    errmsg: str | None = None
    http_status: int | None = None
    retry_at: datetime | None = None
    zero_credits: bool = False
    started_at: datetime = field(default_factory=utcnow)

    @classmethod
    def skip(cls, reason: str) -> Outcome:
        return cls(NotificationStatus.skipped, errmsg=reason)


async def deliver(
    delivery: Delivery, wechat: WeChatClient, settings: Settings, retry: RetryPolicy
) -> Outcome:
    started = utcnow()
    try:
        if delivery.channel == Channel.cloud.value:
            return await _through_cloud_function(delivery, wechat, settings, started)
        return await _direct(delivery, wechat, settings, started)
    except UnfittableValue as error:
        return Outcome(NotificationStatus.failed, errmsg=error.message, started_at=started)
    except WeChatError as error:
        return _after_wechat_error(delivery, error, retry, started)


async def _direct(
    delivery: Delivery, wechat: WeChatClient, settings: Settings, started: datetime
) -> Outcome:
    spec = template(settings, TemplateName(delivery.payload["template"]))
    assert delivery.openid and delivery.template_id  # claiming skipped rows without them
    sent = await wechat.send_subscribe_message(
        touser=delivery.openid,
        template_id=delivery.template_id,
        data=spec.data(delivery.payload.get("values", {})),
        page=delivery.payload.get("page"),
        miniprogram_state=settings.miniprogram_state,
        lang=settings.wechat_lang,
        retry=NO_RETRY,  # backoff is the outbox's: a waiting row holds no worker slot
    )
    return Outcome(NotificationStatus.sent, msgid=sent.msgid, started_at=started)


async def _through_cloud_function(
    delivery: Delivery, wechat: WeChatClient, settings: Settings, started: datetime
) -> Outcome:
    result = await wechat.invoke_cloud_function(
        env=settings.miniprogram_cloud_env,
        name=settings.wechat_cloud_function,
        event=delivery.payload.get("event", {}),
        retry=NO_RETRY,
    )
    if isinstance(result, dict) and result.get("success") is False:
        # The function ran but could not send: its own WeChat error, kept as ours.
        errcode = result.get("errCode")
        return Outcome(
            NotificationStatus.failed,
            errcode=errcode if isinstance(errcode, int) else None,
            errmsg=str(result.get("error") or result.get("errMsg") or "云函数返回失败")[:500],
            zero_credits=errcode == NO_SUBSCRIPTION,
            started_at=started,
        )
    msgid = result.get("msgid") if isinstance(result, dict) else None
    return Outcome(NotificationStatus.sent, msgid=str(msgid) if msgid else None, started_at=started)


def _after_wechat_error(
    delivery: Delivery, error: WeChatError, retry: RetryPolicy, started: datetime
) -> Outcome:
    failed = Outcome(
        NotificationStatus.failed,
        errcode=error.errcode,
        errmsg=error.errmsg[:500],
        http_status=error.http_status,
        zero_credits=error.errcode == NO_SUBSCRIPTION,
        started_at=started,
    )
    if error.kind is ErrorKind.permanent or delivery.attempts >= retry.attempts:
        return failed
    # Transient (and a token error that survived its one retry): try again later.
    wait = timedelta(seconds=retry.delay(delivery.attempts))
    return Outcome(
        NotificationStatus.pending,
        errcode=error.errcode,
        errmsg=error.errmsg[:500],
        http_status=error.http_status,
        retry_at=utcnow() + wait,
        started_at=started,
    )
