"""The WeChat client and the shared token store, over real HTTP to the simulator."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from subprocess import PIPE

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update

from tests.wechat.send_burst import OPENID, TEMPLATE
from wxcrm.core.clock import business_day
from wxcrm.core.db import Database
from wxcrm.core.logging import configure_logging
from wxcrm.core.models import utcnow
from wxcrm.wechat.client import WeChatClient
from wxcrm.wechat.errors import ErrorKind, RetryPolicy, WeChatError
from wxcrm.wechat.models import WeChatToken
from wxcrm.wechat.sim import SimControl

FAST_RETRY = RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.05)
SIM_SECRET = "sim-app-secret"
_app_ids = itertools.count(1)

MakeClient = Callable[..., WeChatClient]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=200)) as client:
        yield client


@pytest.fixture
def app_id() -> str:
    """A fresh app id per test: its token row starts empty, whatever earlier tests did."""
    return f"wx-test-{os.getpid()}-{next(_app_ids)}"


@pytest.fixture
def make_client(
    http: httpx.AsyncClient, database: Database, sim_url: str, app_id: str
) -> MakeClient:
    def make(**overrides: object) -> WeChatClient:
        options: dict[str, object] = {
            "app_id": app_id,
            "app_secret": SecretStr(SIM_SECRET),
            "base_url": sim_url,
            "retry": FAST_RETRY,
        }
        options.update(overrides)
        return WeChatClient(http, database, **options)  # type: ignore[arg-type]

    return make


async def send_one(client: WeChatClient, touser: str = OPENID, template: str = TEMPLATE) -> str:
    sent = await client.send_subscribe_message(
        touser=touser, template_id=template, data={"thing1": {"value": "客户张三查看了您的简历"}}
    )
    return sent.msgid


# -- code2Session -------------------------------------------------------------------------


async def test_login_code_gives_the_openid_and_keeps_the_session_key_secret(
    make_client: MakeClient, sim_control: SimControl
) -> None:
    code = await sim_control.mint_login_code("o-customer-1")
    session = await make_client().code2session(code)
    assert session.openid == "o-customer-1"
    assert session.session_key.get_secret_value()
    assert session.session_key.get_secret_value() not in repr(session)


async def test_a_used_login_code_fails_clearly_after_exactly_one_call(
    make_client: MakeClient, sim_control: SimControl
) -> None:
    client = make_client()
    code = await sim_control.mint_login_code("o-customer-2")
    await client.code2session(code)
    before = (await sim_control.stats())["calls"].get("jscode2session", 0)
    with pytest.raises(WeChatError) as caught:
        await client.code2session(code)
    assert caught.value.errcode == 40163
    assert caught.value.kind is ErrorKind.permanent
    assert (await sim_control.stats())["calls"]["jscode2session"] == before + 1


async def test_code2session_is_not_retried_even_when_wechat_is_busy(
    make_client: MakeClient, sim_control: SimControl
) -> None:
    code = await sim_control.mint_login_code("o-customer-3")
    await sim_control.fault("jscode2session", count=1, errcode=-1)
    with pytest.raises(WeChatError) as caught:
        await make_client().code2session(code)
    assert caught.value.errcode == -1
    assert (await sim_control.stats())["calls"]["jscode2session"] == 1


# -- transient failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault", [{"errcode": -1}, {"http_status": 503}], ids=["errcode-1", "http503"]
)
async def test_send_succeeds_after_backoff_when_wechat_fails_three_times(
    make_client: MakeClient, sim_control: SimControl, fault: dict[str, int]
) -> None:
    await sim_control.grant(OPENID, TEMPLATE, 1)
    client = make_client()
    await client.tokens.get()
    await sim_control.fault("subscribe_send", count=3, **fault)
    msgid = await send_one(client)
    assert msgid
    messages = await sim_control.messages()
    assert [m["msgid"] for m in messages] == [int(msgid)]
    assert (await sim_control.stats())["calls"]["subscribe_send"] == 4


async def test_transient_failures_give_up_after_the_policy_attempts(
    make_client: MakeClient, sim_control: SimControl
) -> None:
    await sim_control.grant(OPENID, TEMPLATE, 1)
    client = make_client(retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02))
    await client.tokens.get()
    await sim_control.fault("subscribe_send", count=10, errcode=-1)
    with pytest.raises(WeChatError) as caught:
        await send_one(client)
    assert caught.value.kind is ErrorKind.transient
    assert (await sim_control.stats())["calls"]["subscribe_send"] == 3
    assert await sim_control.messages() == []


async def test_permanent_errors_are_not_retried(
    make_client: MakeClient, sim_control: SimControl
) -> None:
    client = make_client()
    with pytest.raises(WeChatError) as caught:
        await send_one(client, touser="o-nobody-subscribed")
    assert caught.value.errcode == 43101
    assert (await sim_control.stats())["calls"]["subscribe_send"] == 1


async def test_unreachable_wechat_is_a_transient_error_without_secrets(
    http: httpx.AsyncClient, database: Database, app_id: str
) -> None:
    client = WeChatClient(
        http,
        database,
        app_id=app_id,
        app_secret=SecretStr("the-real-app-secret"),
        base_url="http://127.0.0.1:1",
        retry=RetryPolicy(attempts=2, base_delay=0.01),
    )
    with pytest.raises(WeChatError) as caught:
        await client.code2session("some-code")
    assert caught.value.kind is ErrorKind.transient
    assert "the-real-app-secret" not in str(caught.value)
    with pytest.raises(WeChatError) as caught:
        await client.tokens.get()
    assert "the-real-app-secret" not in str(caught.value)


# -- the shared token ---------------------------------------------------------------------


async def test_concurrent_sends_in_one_process_fetch_one_token(
    make_client: MakeClient, sim_control: SimControl
) -> None:
    await sim_control.grant(OPENID, TEMPLATE, 100)
    client = make_client()
    results = await asyncio.gather(*(send_one(client) for _ in range(100)))
    assert len(set(results)) == 100
    assert (await sim_control.stats())["token_fetches"] == {"stable_token": 1, "token": 0}


async def test_a_token_close_to_expiry_is_refreshed(
    make_client: MakeClient, sim_control: SimControl, database: Database, app_id: str
) -> None:
    client = make_client()
    await client.tokens.get()
    # Leave 200 s on the stored token: under the 300 s margin.
    async with database.writer() as session:
        await session.execute(
            update(WeChatToken)
            .where(WeChatToken.app_id == app_id)
            .values(expires_at=utcnow() + timedelta(seconds=200))
        )
        await session.commit()
    fresh_client = make_client()  # a process that has not seen the token yet
    await fresh_client.tokens.get()
    assert (await sim_control.stats())["token_fetches"]["stable_token"] == 2


async def test_an_invalidated_token_is_replaced_and_the_call_retried_once(
    make_client: MakeClient, sim_control: SimControl
) -> None:
    await sim_control.grant(OPENID, TEMPLATE, 2)
    client = make_client()
    first = await client.tokens.get()
    await sim_control.invalidate_token()
    assert await send_one(client)
    assert await client.tokens.get() != first
    assert (await sim_control.stats())["token_fetches"]["stable_token"] == 2


async def test_token_errors_are_retried_once_not_forever(
    make_client: MakeClient, sim_control: SimControl
) -> None:
    await sim_control.grant(OPENID, TEMPLATE, 1)
    client = make_client()
    await client.tokens.get()
    await sim_control.fault("subscribe_send", count=10, errcode=42001)
    with pytest.raises(WeChatError) as caught:
        await send_one(client)
    assert caught.value.errcode == 42001
    assert (await sim_control.stats())["calls"]["subscribe_send"] == 2


async def test_same_token_after_rejection_forces_a_refresh_within_limits(
    make_client: MakeClient,
    sim_control: SimControl,
    capfd: pytest.CaptureFixture[str],
    structured_logs: None,
) -> None:
    configure_logging("INFO", "json", cache_loggers=False)
    await sim_control.grant(OPENID, TEMPLATE, 5)
    client = make_client()
    original = await client.tokens.get()
    # WeChat rejects a token that its normal mode keeps handing back: only force_refresh helps.
    await sim_control.fault("subscribe_send", count=1, errcode=40001)
    assert await send_one(client)
    forced = await client.tokens.get()
    assert forced != original
    assert (await sim_control.stats())["token_fetches"]["stable_token"] == 3
    logged = capfd.readouterr().err
    assert "wechat token alert" in logged
    assert original not in logged and forced not in logged and SIM_SECRET not in logged

    # A second force inside 30 s is refused: the caller gets the error, no loop.
    await sim_control.fault("subscribe_send", count=1, errcode=40001)
    with pytest.raises(WeChatError) as caught:
        await send_one(client)
    assert caught.value.errcode == 40001
    assert (await sim_control.stats())["token_fetches"]["stable_token"] == 4


async def _run_bursts(
    sim_url: str,
    database_url: str,
    app_id: str,
    *,
    processes: int,
    per_process: int,
    waves: int,
    during: Callable[[], object] | None = None,
) -> list[dict[str, object]]:
    start_at = time.time() + 3.0  # time for every interpreter to import and connect
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.wechat.send_burst",
            sim_url,
            database_url,
            app_id,
            str(per_process),
            str(start_at),
            str(waves),
            stdout=PIPE,
            stderr=PIPE,
        )
        for _ in range(processes)
    ]
    if during is not None:
        await during()  # type: ignore[misc]
    outputs = [await asyncio.wait_for(child.communicate(), timeout=120) for child in children]
    results = []
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err.decode()
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


async def test_four_processes_sending_500_messages_fetch_exactly_one_token(
    sim_url: str, sim_control: SimControl, database: Database, database_url: str, app_id: str
) -> None:
    await sim_control.grant(OPENID, TEMPLATE, 500)
    results = await _run_bursts(
        sim_url, database_url, app_id, processes=4, per_process=125, waves=1
    )
    assert [r["ok"] for r in results] == [125] * 4, results
    assert len(await sim_control.messages()) == 500
    assert (await sim_control.stats())["token_fetches"] == {"stable_token": 1, "token": 0}


async def test_token_invalidated_mid_run_costs_at_most_one_fetch_per_process(
    sim_url: str, sim_control: SimControl, database: Database, database_url: str, app_id: str
) -> None:
    await sim_control.grant(OPENID, TEMPLATE, 500)
    sent_before_invalidation: list[int] = []

    async def invalidate() -> None:
        # Once a fifth of the messages are out, while the rest are still to come.
        while len(await sim_control.messages()) < 100:  # noqa: ASYNC110 (other processes)
            await asyncio.sleep(0.01)
        await sim_control.invalidate_token()
        sent_before_invalidation.append(len(await sim_control.messages()))

    results = await _run_bursts(
        sim_url, database_url, app_id, processes=4, per_process=125, waves=5, during=invalidate
    )
    assert [r["ok"] for r in results] == [125] * 4, results
    assert 0 < sent_before_invalidation[0] < 500, "the invalidation did not fall mid-run"
    assert len(await sim_control.messages()) == 500
    fetches = (await sim_control.stats())["token_fetches"]["stable_token"]
    assert 2 <= fetches <= 1 + 4


# -- the other calls ----------------------------------------------------------------------


async def test_cloud_function_gets_at_least_an_empty_event_and_its_result_is_parsed(
    make_client: MakeClient, sim_control: SimControl
) -> None:
    client = make_client()
    result = await client.invoke_cloud_function(
        env="cloud1-test",
        name="quickstartFunctions",
        event={"type": "sendCustomerAssignNotify", "notificationData": {"assignedToId": "a" * 24}},
    )
    assert result["success"] is True
    invocations = await sim_control.invocations()
    assert invocations[-1]["env"] == "cloud1-test"
    assert invocations[-1]["event"]["type"] == "sendCustomerAssignNotify"

    unknown = await client.invoke_cloud_function(env="cloud1-test", name="quickstartFunctions")
    assert unknown["success"] is False
    assert (await sim_control.invocations())[-1]["event"] == {}


async def test_verified_phone_number(make_client: MakeClient, sim_control: SimControl) -> None:
    code = await sim_control.mint_phone_code("13800138000")
    phone = await make_client().get_user_phone_number(code)
    assert phone.pure_phone_number == "13800138000"
    assert phone.country_code == "86"
    with pytest.raises(WeChatError) as caught:
        await make_client().get_user_phone_number(code)
    assert caught.value.errcode == 40029


async def test_sends_carry_miniprogram_state_and_lang(
    make_client: MakeClient, sim_control: SimControl
) -> None:
    await sim_control.grant(OPENID, TEMPLATE, 1)
    await make_client().send_subscribe_message(
        touser=OPENID,
        template_id=TEMPLATE,
        data={"thing1": {"value": "新客户想要联系您"}},
        page="pages/customer/detail?id=507f1f77bcf86cd799439012",
        miniprogram_state="trial",
    )
    [message] = await sim_control.messages()
    assert message["miniprogram_state"] == "trial"
    assert message["lang"] == "zh_CN"
    assert message["page"] == "pages/customer/detail?id=507f1f77bcf86cd799439012"


async def test_nothing_secret_reaches_the_log(
    make_client: MakeClient,
    sim_control: SimControl,
    capfd: pytest.CaptureFixture[str],
    structured_logs: None,
) -> None:
    configure_logging("DEBUG", "json", cache_loggers=False)
    client = make_client()
    code = await sim_control.mint_login_code("o-customer-9")
    session = await client.code2session(code)
    token = await client.tokens.get()
    await sim_control.fault("subscribe_send", count=1, errcode=-1)
    with pytest.raises(WeChatError):
        await send_one(client, touser="o-without-credit")
    logged = capfd.readouterr().err
    assert logged  # something was logged at all
    for secret in (SIM_SECRET, session.session_key.get_secret_value(), token):
        assert secret not in logged


async def test_no_force_refresh_once_todays_twenty_are_spent(
    make_client: MakeClient, sim_control: SimControl, database: Database, app_id: str
) -> None:
    await sim_control.grant(OPENID, TEMPLATE, 1)
    client = make_client()
    await client.tokens.get()
    async with database.writer() as session:
        await session.execute(
            update(WeChatToken)
            .where(WeChatToken.app_id == app_id)
            .values(force_refresh_day=business_day(utcnow()), force_refresh_count=20)
        )
        await session.commit()
    await sim_control.fault("subscribe_send", count=1, errcode=40001)
    with pytest.raises(WeChatError) as caught:
        await send_one(client)
    assert "20 force_refresh" in caught.value.errmsg
    # The normal-mode fetch happened; the forced one did not.
    assert (await sim_control.stats())["token_fetches"]["stable_token"] == 2


async def test_the_force_refresh_quota_starts_again_at_midnight_in_china(
    make_client: MakeClient,
    sim_control: SimControl,
    database: Database,
    app_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 17:00 UTC on 1 January is 01:00 on 2 January in Beijing, where WeChat counts its
    # days: yesterday's twenty no longer count, though it is still 1 January in UTC.
    monkeypatch.setattr(
        "wxcrm.wechat.tokens.utcnow", lambda: datetime(2026, 1, 1, 17, 0, tzinfo=UTC)
    )
    await sim_control.grant(OPENID, TEMPLATE, 1)
    client = make_client()
    await client.tokens.get()
    async with database.writer() as session:
        await session.execute(
            update(WeChatToken)
            .where(WeChatToken.app_id == app_id)
            .values(force_refresh_day=date(2026, 1, 1), force_refresh_count=20)
        )
        await session.commit()
    await sim_control.fault("subscribe_send", count=1, errcode=40001)
    await send_one(client)  # the forced refresh is allowed, and the retry goes through
    async with database.reader() as session:
        row = await session.get(WeChatToken, app_id)
    assert row is not None
    assert (row.force_refresh_day, row.force_refresh_count) == (date(2026, 1, 2), 1)
