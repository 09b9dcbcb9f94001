"""Telling an advisor something: the one way other domains queue a message to an advisor.

A domain says what happened (the event), which template says it, with which values and
page, and how repeats fold; this module picks the template and the channel, decides
whether the message can be sent at all, and queues it in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.settings import Settings
from wxcrm.notifications.outbox import Channel, Outgoing, Queued, queue_notifications
from wxcrm.notifications.subscriptions import CreditsOnHand, unsendable_reason
from wxcrm.notifications.templates import Template, TemplateName
from wxcrm.notifications.templates import template as template_spec


@dataclass(frozen=True)
class Recipient:
    """The advisor to tell, and the WeChat account its messages go to (None: not bound)."""

    advisor_id: str
    openid: str | None


@dataclass(frozen=True)
class Message:
    """What to tell an advisor; see `tell_advisor` for each part."""

    advisor: Recipient
    event: str
    template: TemplateName
    values: Mapping[str, object]
    page: str | None
    details: Mapping[str, Any] | None = None
    cloud_event: Mapping[str, Any] | None = None
    fold_key: str | None = None
    fold_window: timedelta | None = None


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
    message = Message(
        advisor, event, template, values, page, details, cloud_event, fold_key, fold_window
    )
    return (await tell_advisors(session, settings, [message]))[0]


async def tell_advisors(
    session: AsyncSession, settings: Settings, messages: Sequence[Message]
) -> list[Queued]:
    """Queue each message as `tell_advisor` would, in order, with a handful of statements
    for the lot (the sends left to their advisors read at most once)."""
    specs = [template_spec(settings, message.template) for message in messages]
    to_cloud = [
        message.cloud_event is not None and settings.notify_channel == Channel.cloud.value
        for message in messages
    ]
    credits = CreditsOnHand(
        session,
        [
            (message.advisor.advisor_id, spec.template_id)
            for message, spec, cloud in zip(messages, specs, to_cloud, strict=True)
            if not cloud
        ],
    )
    outgoing = [
        _to_cloud(message, spec) if cloud else _direct(message, spec, credits)
        for message, spec, cloud in zip(messages, specs, to_cloud, strict=True)
    ]
    return await queue_notifications(session, outgoing)


def _to_cloud(message: Message, spec: Template) -> Outgoing:
    # Whether it can be sent is the function's to say (it has its own template and finds
    # the openid itself): its failures come back when the worker invokes it.
    return Outgoing(
        event=message.event,
        channel=Channel.cloud,
        advisor_id=message.advisor.advisor_id,
        template_id=spec.template_id or None,
        payload={"event": dict(message.cloud_event or {})},
        fold_key=message.fold_key,
        fold_window=message.fold_window,
    )


def _direct(message: Message, spec: Template, credits: CreditsOnHand) -> Outgoing:
    async def skip_reason() -> str | None:  # asked only if the event does not fold
        return await unsendable_reason(
            credits,
            advisor_id=message.advisor.advisor_id,
            openid=message.advisor.openid,
            template_id=spec.template_id,
            long_term=spec.long_term,
        )

    return Outgoing(
        event=message.event,
        channel=Channel.direct,
        advisor_id=message.advisor.advisor_id,
        template_id=spec.template_id or None,
        payload={
            "template": spec.name.value,
            "values": dict(message.values),
            "page": message.page,
            **(message.details or {}),
        },
        fold_key=message.fold_key,
        fold_window=message.fold_window,
        skip_reason=skip_reason,
    )
