"""Telling an advisor something: the one way other domains queue a message to an advisor.

A domain says what happened (the event), which template says it, with which values and
page, and how repeats fold; this module picks the template and the channel, decides
whether the message can be sent at all, and queues it in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.settings import Settings
from wxcrm.notifications.outbox import Channel, Queued, queue_notification
from wxcrm.notifications.subscriptions import unsendable_reason
from wxcrm.notifications.templates import TemplateName
from wxcrm.notifications.templates import template as template_spec


@dataclass(frozen=True)
class Recipient:
    """The advisor to tell, and the WeChat account its messages go to (None: not bound)."""

    advisor_id: str
    openid: str | None


async def tell_advisor(
    session: AsyncSession,
    settings: Settings,
    advisor: Recipient,
    *,
    event: str,
    template: TemplateName,
    values: Mapping[str, object],
    page: str | None,
    details: Mapping[str, Any] | None = None,
    cloud_event: Mapping[str, Any] | None = None,
    fold_key: str | None = None,
    fold_window: timedelta | None = None,
) -> Queued:
    """Queue a message to `advisor` in the caller's transaction.

    `values` are the template's named values (fitted to its keywords when sent); `details`
    are kept in the row beside them for the notifications view, and never sent. When the
    settings send through the cloud function, an event it knows (`cloud_event`, the data
    its deployed code expects) goes to it; every other event is sent directly. A direct
    message that cannot be sent (no bound openid, no template, no send left) is queued
    already skipped, saying why; folding as in `queue_notification`.
    """
    spec = template_spec(settings, template)
    template_id = spec.template_id or None
    if cloud_event is not None and settings.notify_channel == Channel.cloud.value:
        # Whether it can be sent is the function's to say (it has its own template and finds
        # the openid itself): its failures come back when the worker invokes it.
        return await queue_notification(
            session,
            event=event,
            channel=Channel.cloud,
            advisor_id=advisor.advisor_id,
            template_id=template_id,
            payload={"event": dict(cloud_event)},
            fold_key=fold_key,
            fold_window=fold_window,
        )

    async def skip_reason() -> str | None:  # asked only if the event does not fold
        return await unsendable_reason(
            session,
            advisor_id=advisor.advisor_id,
            openid=advisor.openid,
            template_id=spec.template_id,
            long_term=spec.long_term,
        )

    return await queue_notification(
        session,
        event=event,
        channel=Channel.direct,
        advisor_id=advisor.advisor_id,
        template_id=template_id,
        payload={
            "template": spec.name.value,
            "values": dict(values),
            "page": page,
            **(details or {}),
        },
        fold_key=fold_key,
        fold_window=fold_window,
        skip_reason=skip_reason,
    )
