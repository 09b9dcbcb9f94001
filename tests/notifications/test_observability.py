"""/metrics after a known sequence of requests, deliveries, pool moves and refusals: each
figure an operator graphs or alerts on moves by exactly what happened."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import httpx
import structlog
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from tests.factories import committed_advisor, make_customer, make_user, staff_headers
from tests.notifications.conftest import grant_at_wechat, queue_action, queue_committed
from tests.notifications.test_worker import run_worker_until_settled
from wxcrm.core.db import Database
from wxcrm.core.models import utcnow
from wxcrm.core.settings import Settings
from wxcrm.customers.pool.service import recycle_to_pool
from wxcrm.notifications.models import Notification
from wxcrm.notifications.subscriptions import NO_OPENID
from wxcrm.notifications.worker import DeliveryWorker
from wxcrm.users.models import Role
from wxcrm.wechat.sim import SimControl

Sample = tuple[str, frozenset[tuple[str, str]]]


async def scrape(client: httpx.AsyncClient) -> dict[Sample, float]:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def moved(
    before: Mapping[Sample, float], after: Mapping[Sample, float], name: str, **labels: str
) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def value(samples: Mapping[Sample, float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def test_metrics_count_a_known_sequence_of_requests_and_deliveries(
    live_client: httpx.AsyncClient,
    committed: Database,
    worker: DeliveryWorker,
    sim_control: SimControl,
    outbox_settings: Settings,
) -> None:
    # The counters are the process's since it started: the test reads what it moved.
    before = await scrape(live_client)

    for _ in range(3):
        assert (await live_client.get("/api/health/live")).status_code == 200
    assert (await live_client.get("/no/such/page")).status_code == 404
    async with committed.writer() as session:
        manager = await make_user(session, role=Role.manager, username="metrics-manager")
        advisor = await make_user(session, role=Role.advisor)
        pooled = await make_customer(session, None)
        overdue = await make_customer(session, advisor, assigned_at=utcnow() - timedelta(days=40))
        await session.commit()
    # A customer's id in the path is counted under the route's template, not one per id.
    headers = staff_headers(manager)
    for customer_id in (pooled.id, overdue.id):
        answer = await live_client.get(f"/api/customers/{customer_id}", headers=headers)
        assert answer.status_code == 200
    # Five wrong passwords, then the sixth try is refused by the per-username limit.
    wrong = {"username": "metrics-manager", "password": "not-the-password"}
    for _ in range(5):
        assert (await live_client.post("/api/auth/login", json=wrong)).status_code == 401
    assert (await live_client.post("/api/auth/login", json=wrong)).status_code == 429
    # One claim from the public pool, and one customer recycled into it by the job.
    claimed = await live_client.post(
        "/api/customers/public-pool/claim",
        json={"customerIds": [pooled.id]},
        headers=staff_headers(advisor),
    )
    assert claimed.json()["data"]["success"] == 1
    assert (await recycle_to_pool(committed, outbox_settings)).recycled == 1

    # Deliveries: two sent at once, one sent on its second try after WeChat's -1.
    receiver = await committed_advisor(committed, credits=3)
    await grant_at_wechat(sim_control, receiver, 3)
    await queue_committed(committed, receiver, 2)
    await run_worker_until_settled(worker, committed)
    await sim_control.fault("subscribe_send", errcode=-1)
    await queue_committed(committed, receiver, 1)
    await run_worker_until_settled(worker, committed)
    # And two left waiting (no worker runs now): one due for two minutes, and a retry
    # queued an hour ago waiting out its backoff, not due yet.
    async with committed.writer() as session:
        due = (await queue_action(session, receiver, "due")).notification
        backing_off = (await queue_action(session, receiver, "backing-off")).notification
        for row_id, created, scheduled in (
            (due.id, timedelta(minutes=2), timedelta(minutes=2)),
            (backing_off.id, timedelta(hours=1), -timedelta(minutes=3)),
        ):
            await session.execute(
                update(Notification)
                .where(Notification.id == row_id)
                .values(created_at=utcnow() - created, scheduled_at=utcnow() - scheduled)
            )
        await session.commit()

    # One skipped as it is queued (its advisor has no WeChat bound): counted as skipped.
    async with committed.writer() as session:
        await queue_action(session, receiver, "unbound", skip_reason=NO_OPENID)
        await session.commit()

    after = await scrape(live_client)

    requests = "wxcrm_http_requests_total"
    assert moved(before, after, requests, route="/api/health/live", method="GET", status="200") == 3
    assert moved(before, after, requests, route="unmatched", method="GET", status="404") == 1
    route = "/api/customers/{customer_id}"
    assert moved(before, after, requests, route=route, method="GET", status="200") == 2
    assert moved(before, after, requests, route="/api/auth/login", method="POST", status="401") == 5
    assert moved(before, after, requests, route="/api/auth/login", method="POST", status="429") == 1
    latency = "wxcrm_http_request_duration_seconds_count"
    assert moved(before, after, latency, route="/api/health/live", method="GET") == 3
    bucket = "wxcrm_http_request_duration_seconds_bucket"
    assert moved(before, after, bucket, route="/api/health/live", method="GET", le="+Inf") == 3
    assert not any(
        name == requests and ("route", f"/api/customers/{pooled.id}") in labels
        for name, labels in after
    )

    refusals = "wxcrm_rate_limit_refusals_total"
    assert moved(before, after, refusals, rule="login_failures_per_username") == 1
    assert moved(before, after, "wxcrm_public_pool_claims_total") == 1
    assert moved(before, after, "wxcrm_public_pool_recycles_total") == 1

    deliveries = "wxcrm_notification_deliveries_total"
    assert moved(before, after, deliveries, outcome="sent", errcode="none") == 3
    assert moved(before, after, deliveries, outcome="retry", errcode="-1") == 1
    assert moved(before, after, deliveries, outcome="failed", errcode="-1") == 0
    assert moved(before, after, deliveries, outcome="skipped", errcode="none") == 1
    # The `committed` fixture forgot the stored token: one fetch served all three sends.
    fetches = "wxcrm_wechat_token_fetches_total"
    assert moved(before, after, fetches, forced="false", outcome="ok") == 1
    assert moved(before, after, fetches, forced="true", outcome="ok") == 0

    assert value(after, "wxcrm_database_up") == 1
    assert value(after, "wxcrm_outbox_messages", status="pending") == 2
    assert value(after, "wxcrm_outbox_messages", status="sending") == 0
    assert 120 <= value(after, "wxcrm_outbox_oldest_due_age_seconds") < 600
    assert value(after, "wxcrm_db_pool_connections_in_use") == 0


async def test_a_notification_can_be_followed_in_the_log_from_queue_to_outcome(
    committed: Database, worker: DeliveryWorker, sim_control: SimControl
) -> None:
    receiver = await committed_advisor(committed, credits=2)
    await grant_at_wechat(sim_control, receiver, 2)
    await sim_control.fault("subscribe_send", errcode=-1)  # its first try fails
    with structlog.testing.capture_logs() as logs:
        async with committed.writer() as session:
            queued = (await queue_action(session, receiver, "followed")).notification
            await session.commit()
        await run_worker_until_settled(worker, committed)

    trail = [
        (line["event"], line.get("attempt"), line.get("errcode"))
        for line in logs
        if line.get("notification_id") == queued.id
    ]
    assert trail == [
        ("notification queued", None, None),
        ("notification claimed", 1, None),
        ("notification not delivered", 1, -1),
        ("notification claimed", 2, None),
        ("notification sent", 2, None),
    ]
    [sent] = [line for line in logs if line["event"] == "notification sent"]
    assert sent["msgid"] and sent["worker_id"] == worker.id


async def test_a_notification_rolled_back_with_its_change_is_never_logged(
    committed: Database,
) -> None:
    receiver = await committed_advisor(committed, credits=1)
    with structlog.testing.capture_logs() as logs:
        async with committed.writer() as session:
            queued = (await queue_action(session, receiver, "rolled-back")).notification
            await session.rollback()
        async with committed.writer() as session:
            kept = (await queue_action(session, receiver, "kept")).notification
            await session.commit()
    named = [line.get("notification_id") for line in logs if line["event"].startswith("notif")]
    assert named == [kept.id] and queued.id != kept.id
