"""The notifications view: filters, who sees what, attempts, retry."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import assert_error
from tests.factories import committed_advisor, make_user, token_for
from tests.notifications.conftest import action_payload, queue_action
from wxcrm.core.db import Database
from wxcrm.core.models import utcnow
from wxcrm.notifications.models import Notification, NotificationAttempt
from wxcrm.users.models import Role, User


async def add(
    session: AsyncSession, advisor: User, status: str, event: str = "customer_action"
) -> Notification:
    row = Notification(
        event=event,
        channel="direct",
        advisor_id=advisor.id,
        payload=action_payload(),
        status=status,
        attempts=1,
        last_errcode=43101 if status == "failed" else None,
    )
    session.add(row)
    await session.flush()
    session.add(
        NotificationAttempt(
            notification_id=row.id,
            number=1,
            outcome=status,
            errcode=row.last_errcode,
            finished_at=utcnow(),
        )
    )
    await session.flush()
    return row


async def test_managers_list_and_filter_everything(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    manager = await make_user(session, Role.manager)
    one, two = await make_user(session), await make_user(session)
    await add(session, one, "sent")
    failed = await add(session, one, "failed")
    await add(session, two, "failed", event="customer_assigned")
    headers = await token_for(client, manager)

    everything = (await client.get("/api/notifications", headers=headers)).json()["data"]
    assert everything["total"] == 3 and len(everything["items"]) == 3
    only_failed = await client.get(
        "/api/notifications", params={"status": "failed", "advisorId": one.id}, headers=headers
    )
    [item] = only_failed.json()["data"]["items"]
    assert item["_id"] == failed.id and item["lastErrcode"] == 43101
    by_event = await client.get(
        "/api/notifications", params={"event": "customer_assigned"}, headers=headers
    )
    assert by_event.json()["data"]["total"] == 1
    paged = await client.get("/api/notifications", params={"page": 2, "limit": 2}, headers=headers)
    assert paged.json()["data"]["total"] == 3 and len(paged.json()["data"]["items"]) == 1


async def test_an_advisor_sees_only_its_own(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    mine, other = await make_user(session), await make_user(session)
    own = await add(session, mine, "sent")
    theirs = await add(session, other, "sent")
    headers = await token_for(client, mine)
    listed = await client.get("/api/notifications", params={"advisorId": other.id}, headers=headers)
    assert [i["_id"] for i in listed.json()["data"]["items"]] == [own.id]
    assert (await client.get(f"/api/notifications/{own.id}", headers=headers)).status_code == 200
    assert_error(
        await client.get(f"/api/notifications/{theirs.id}", headers=headers), 404, "NOT_FOUND"
    )


async def test_detail_shows_every_attempt(client: httpx.AsyncClient, session: AsyncSession) -> None:
    manager = await make_user(session, Role.manager)
    row = await add(session, await make_user(session), "failed")
    detail = await client.get(
        f"/api/notifications/{row.id}", headers=await token_for(client, manager)
    )
    data = detail.json()["data"]
    assert data["status"] == "failed"
    assert [(a["number"], a["outcome"], a["errcode"]) for a in data["attemptLog"]] == [
        (1, "failed", 43101)
    ]


async def test_a_manager_retries_a_failed_notification(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    manager = await make_user(session, Role.manager)
    row = await add(session, await make_user(session), "failed")
    headers = await token_for(client, manager)
    response = await client.post(f"/api/notifications/{row.id}/retry", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "pending"
    assert response.json()["data"]["attempts"] == 0
    again = await client.post(f"/api/notifications/{row.id}/retry", headers=headers)
    assert_error(again, 409, "CONFLICT")


async def test_advisors_cannot_retry(client: httpx.AsyncClient, session: AsyncSession) -> None:
    advisor = await make_user(session)
    row = await add(session, advisor, "failed")
    response = await client.post(
        f"/api/notifications/{row.id}/retry", headers=await token_for(client, advisor)
    )
    assert_error(response, 403, "FORBIDDEN")
    await session.refresh(row)
    assert row.status == "failed"


async def test_bad_ids_and_filters_are_400_and_unknown_ids_404(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    headers = await token_for(client, await make_user(session, Role.admin))
    assert_error(
        await client.get("/api/notifications/not-an-id", headers=headers), 400, "VALIDATION_ERROR"
    )
    assert_error(
        await client.get("/api/notifications", params={"status": "lost"}, headers=headers),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        await client.get("/api/notifications", params={"limit": 0}, headers=headers),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        await client.get(f"/api/notifications/{'0' * 24}", headers=headers), 404, "NOT_FOUND"
    )
    assert_error(await client.get("/api/notifications"), 401, "UNAUTHORIZED")


async def test_health_shows_the_outbox_backlog(
    client: httpx.AsyncClient, committed: Database
) -> None:
    # Health reads with its own connection: the rows must be committed.
    advisor = await committed_advisor(committed)
    async with committed.writer() as session:
        await queue_action(session, advisor)
        await session.commit()
    data = (await client.get("/api/health")).json()["data"]
    assert data["outbox"] == {"pending": 1, "sending": 0, "failed": 0}
    assert set(data["wechatToken"]) == {"cached", "expiresIn"}
