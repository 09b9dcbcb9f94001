"""The notifications view: what was queued, how delivery went, and retrying a failure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from wxcrm.core.db import SessionDep
from wxcrm.core.envelope import Envelope
from wxcrm.core.ids import OBJECT_ID_PATTERN
from wxcrm.core.pagination import Page, PageDep
from wxcrm.notifications import service
from wxcrm.notifications.models import NotificationStatus
from wxcrm.notifications.repository import NotificationRepository
from wxcrm.notifications.schemas import AttemptOut, NotificationDetailOut, NotificationOut
from wxcrm.users.deps import CurrentManager, CurrentUser

router = APIRouter(prefix="/api/notifications", tags=["notifications"])

NotificationId = Annotated[str, Path(pattern=OBJECT_ID_PATTERN.pattern, description="通知ID")]


@router.get("")
async def list_notifications(
    session: SessionDep,
    user: CurrentUser,
    page: PageDep,
    status: Annotated[NotificationStatus | None, Query(description="投递状态")] = None,
    advisor_id: Annotated[
        str | None, Query(alias="advisorId", pattern=OBJECT_ID_PATTERN.pattern)
    ] = None,
    event: Annotated[str | None, Query(max_length=32)] = None,
) -> Envelope[Page[NotificationOut]]:
    """Queued notifications, newest first, with their delivery state."""
    rows, total = await service.page_for(
        session,
        user,
        status=status.value if status else None,
        advisor_id=advisor_id,
        event=event,
        offset=page.offset,
        limit=page.limit,
    )
    items = [NotificationOut.model_validate(row) for row in rows]
    return Envelope[Page[NotificationOut]](
        data=Page[NotificationOut].of(items, total, page), message="获取通知列表成功"
    )


@router.get("/{notification_id}")
async def get_notification(
    notification_id: NotificationId, session: SessionDep, user: CurrentUser
) -> Envelope[NotificationDetailOut]:
    """One notification with every delivery attempt."""
    repository = NotificationRepository(session)
    notification = service.visible(await repository.get(notification_id), user)
    attempts = [AttemptOut.model_validate(a) for a in await repository.attempts(notification.id)]
    summary = NotificationOut.model_validate(notification).model_dump()
    detail = NotificationDetailOut(**summary, attempt_log=attempts)
    return Envelope[NotificationDetailOut](data=detail, message="获取通知详情成功")


@router.post("/{notification_id}/retry")
async def retry_notification(
    notification_id: NotificationId, session: SessionDep, user: CurrentManager
) -> Envelope[NotificationOut]:
    """Send a failed or skipped notification again (admins and managers)."""
    notification = await service.retry(session, notification_id, user)
    return Envelope[NotificationOut](
        data=NotificationOut.model_validate(notification), message="已重新加入发送队列"
    )
