"""The WeChat simulator answers as WeChat does, errors included, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from wxcrm.wechat.sim import DEFAULT_APP_ID, DEFAULT_APP_SECRET, SimControl, SimServer

SECRET = DEFAULT_APP_SECRET
USER = "o-user-1"
TEMPLATE = "tmpl-assign"
DAY = 86_400


def errcode(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    code = body.get("errcode", 0)
    if code:
        assert " rid: " in body["errmsg"], body
    return int(code)


async def session(http: httpx.AsyncClient, code: str, **overrides: str) -> httpx.Response:
    params = {
        "appid": DEFAULT_APP_ID,
        "secret": SECRET,
        "js_code": code,
        "grant_type": "authorization_code",
    }
    return await http.get("/sns/jscode2session", params={**params, **overrides})


async def stable(http: httpx.AsyncClient, *, force: bool = False) -> dict[str, Any]:
    body = {"grant_type": "client_credential", "appid": DEFAULT_APP_ID, "secret": SECRET}
    response = await http.post("/cgi-bin/stable_token", json={**body, "force_refresh": force})
    answer: dict[str, Any] = response.json()
    return answer


async def plain_token(http: httpx.AsyncClient) -> str:
    params = {"grant_type": "client_credential", "appid": DEFAULT_APP_ID, "secret": SECRET}
    answer = (await http.get("/cgi-bin/token", params=params)).json()
    assert answer["expires_in"] == 7200
    return str(answer["access_token"])


async def send(
    http: httpx.AsyncClient, token: str | None, data: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    body: dict[str, Any] = {
        "touser": USER,
        "template_id": TEMPLATE,
        "data": {key: {"value": value} for key, value in (data or {"thing1": "新客户"}).items()},
        "miniprogram_state": "formal",
        "lang": "zh_CN",
    }
    body.update(fields)
    params = {"access_token": token} if token is not None else {}
    return await http.post("/cgi-bin/message/subscribe/send", params=params, json=body)


async def token_check(http: httpx.AsyncClient, token: str) -> int:
    """The errcode a call with `token` gets: 40003 means the token passed (touser is empty)."""
    return errcode(await send(http, token, touser=""))


# -- code2Session ------------------------------------------------------------------------------


async def test_a_login_code_works_once_and_the_session_key_is_stable(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    code = await sim_control.mint_login_code(USER, unionid="u-1")
    answer = (await session(sim_http, code)).json()
    assert "errcode" not in answer  # success carries no errcode
    assert answer["openid"] == USER and answer["unionid"] == "u-1" and answer["session_key"]

    again = await session(sim_http, code)
    assert errcode(again) == 40163
    assert again.json()["errmsg"].startswith("code been used rid: ")

    second = (await session(sim_http, await sim_control.mint_login_code(USER))).json()
    assert second["session_key"] == answer["session_key"]
    other = (await session(sim_http, await sim_control.mint_login_code("o-other"))).json()
    assert "unionid" not in other and other["session_key"] != answer["session_key"]


async def test_a_login_code_expires_after_five_minutes(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    fresh = await sim_control.mint_login_code(USER)
    stale = await sim_control.mint_login_code(USER)
    await sim_control.advance_clock(299)
    assert errcode(await session(sim_http, fresh)) == 0
    await sim_control.advance_clock(2)
    assert errcode(await session(sim_http, stale)) == 40029
    assert errcode(await session(sim_http, "never-minted")) == 40029


async def test_code2session_checks_the_app_before_spending_the_code(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    code = await sim_control.mint_login_code(USER)
    assert errcode(await session(sim_http, code, secret="wrong")) == 40125
    assert errcode(await session(sim_http, code, appid="")) == 41002
    assert errcode(await session(sim_http, code, grant_type="client_credential")) == 40002
    assert errcode(await session(sim_http, "")) == 41008
    assert errcode(await sim_http.post("/sns/jscode2session")) == 43001
    assert errcode(await session(sim_http, code)) == 0
    # The shared simulator accepts any app id; one made with the defaults accepts only its own.
    with SimServer() as strict:
        async with httpx.AsyncClient(base_url=strict.base_url) as http:
            strict_code = strict.state.mint_login_code(USER)
            assert errcode(await session(http, strict_code, appid="wx-someone-else")) == 40013
            assert errcode(await session(http, strict_code)) == 0


# -- stable_token ------------------------------------------------------------------------------


async def test_stable_token_hands_back_the_same_token_until_300_s_remain(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    first = await stable(sim_http)
    assert first["expires_in"] == 7200
    await sim_control.advance_clock(100)
    again = await stable(sim_http)
    assert again["access_token"] == first["access_token"]
    assert 7099 <= again["expires_in"] <= 7100

    await sim_control.advance_clock(6800)  # 300 s left: time for a new one
    renewed = await stable(sim_http)
    assert renewed["access_token"] != first["access_token"]
    assert renewed["expires_in"] == 7200
    # The old one lives out its own life, then expires.
    assert await token_check(sim_http, first["access_token"]) == 40003
    await sim_control.advance_clock(301)
    assert await token_check(sim_http, first["access_token"]) == 42001
    assert await token_check(sim_http, renewed["access_token"]) == 40003


async def test_stable_token_is_post_json_with_checked_credentials(
    sim_http: httpx.AsyncClient,
) -> None:
    good = {"grant_type": "client_credential", "appid": DEFAULT_APP_ID, "secret": SECRET}
    url = "/cgi-bin/stable_token"
    assert errcode(await sim_http.get(url)) == 43002
    assert errcode(await sim_http.post(url, json={**good, "appid": ""})) == 41002
    no_secret = {k: v for k, v in good.items() if k != "secret"}
    assert errcode(await sim_http.post(url, json=no_secret)) == 41004
    assert errcode(await sim_http.post(url, json={**good, "secret": ""})) == 41004
    assert errcode(await sim_http.post(url, json={**good, "secret": "nope"})) == 40125
    assert errcode(await sim_http.post(url, json={**good, "grant_type": "x"})) == 40002
    assert errcode(await sim_http.post(url, content=b"not json")) == 47001
    assert errcode(await sim_http.post(url, json=good)) == 0


async def test_force_refresh_replaces_the_token_at_most_every_30_s(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    original = (await stable(sim_http))["access_token"]
    forced = (await stable(sim_http, force=True))["access_token"]
    assert forced != original
    assert await token_check(sim_http, original) == 40001
    # Inside 30 s a forced call does not refresh, and says nothing about it.
    await sim_control.advance_clock(29)
    assert (await stable(sim_http, force=True))["access_token"] == forced
    await sim_control.advance_clock(2)
    assert (await stable(sim_http, force=True))["access_token"] != forced
    assert await token_check(sim_http, forced) == 40001


async def test_force_refresh_is_limited_to_20_a_day(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    # Start just after a midnight in Beijing, where WeChat's day turns.
    now = await sim_control.now()
    await sim_control.advance_clock(DAY - (now + 8 * 3600) % DAY + 1)
    for _ in range(20):
        assert "access_token" in await stable(sim_http, force=True)
        await sim_control.advance_clock(31)
    refused = await stable(sim_http, force=True)
    assert refused["errcode"] == 45009
    # Normal mode still works, and the next day the quota is back.
    assert "access_token" in await stable(sim_http)
    await sim_control.advance_clock(DAY)
    assert "access_token" in await stable(sim_http, force=True)


async def test_invalidated_and_expired_tokens_are_replaced_by_normal_mode(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    first = (await stable(sim_http))["access_token"]
    assert await sim_control.invalidate_token() is True
    assert await token_check(sim_http, first) == 40001
    second = (await stable(sim_http))["access_token"]
    assert second != first
    assert await sim_control.expire_tokens() == 1
    assert await token_check(sim_http, second) == 42001
    third = (await stable(sim_http))["access_token"]
    assert third not in (first, second)
    assert await token_check(sim_http, third) == 40003


async def test_token_ttl_is_configurable(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    assert (await sim_control.configure(token_ttl_seconds=600))["token_ttl_seconds"] == 600
    short = await stable(sim_http)
    assert short["expires_in"] == 600
    await sim_control.advance_clock(301)  # 299 s left
    assert (await stable(sim_http))["access_token"] != short["access_token"]


# -- /cgi-bin/token ----------------------------------------------------------------------------


async def test_cgi_bin_token_rotates_and_the_old_one_lives_300_s(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    stable_token = (await stable(sim_http))["access_token"]
    old = await plain_token(sim_http)
    new = await plain_token(sim_http)
    assert new != old
    await sim_control.advance_clock(299)
    assert await token_check(sim_http, old) == 40003
    await sim_control.advance_clock(2)
    assert await token_check(sim_http, old) == 40001
    assert await token_check(sim_http, new) == 40003
    # The two families do not touch each other.
    assert (await stable(sim_http))["access_token"] == stable_token
    params = {"grant_type": "client_credential", "appid": DEFAULT_APP_ID, "secret": "nope"}
    assert errcode(await sim_http.get("/cgi-bin/token", params=params)) == 40125


async def test_calls_check_their_access_token(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    token = (await stable(sim_http))["access_token"]
    calls = [
        ("/cgi-bin/message/subscribe/send", b"{}"),
        ("/tcb/invokecloudfunction?env=e&name=quickstartFunctions", b"{}"),
        ("/wxa/business/getuserphonenumber", b"{}"),
    ]
    for path, body in calls:
        sep = "&" if "?" in path else "?"
        assert errcode(await sim_http.post(path, content=body)) == 41001
        assert errcode(await sim_http.post(f"{path}{sep}access_token=nope", content=body)) == 40014
    await sim_control.advance_clock(7200)
    for path, body in calls:
        sep = "&" if "?" in path else "?"
        assert errcode(await sim_http.post(f"{path}{sep}access_token={token}", content=body)) == (
            42001
        )


# -- subscribe/send ----------------------------------------------------------------------------


async def test_each_send_spends_one_credit(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    token = (await stable(sim_http))["access_token"]
    assert errcode(await send(sim_http, token)) == 43101
    assert await sim_control.grant(USER, TEMPLATE, 2) == 2
    first = (await send(sim_http, token, page="pages/index/index?id=1")).json()
    second = (await send(sim_http, token)).json()
    assert first["errcode"] == 0 and first["errmsg"] == "ok"
    assert second["msgid"] > first["msgid"]
    answer = await send(sim_http, token)
    assert errcode(answer) == 43101
    assert answer.json()["errmsg"].startswith("user refuse to accept the msg rid: ")

    messages = await sim_control.messages()
    assert [m["msgid"] for m in messages] == [first["msgid"], second["msgid"]]
    assert messages[0]["touser"] == USER and messages[0]["template_id"] == TEMPLATE
    assert messages[0]["page"] == "pages/index/index?id=1"
    assert messages[0]["data"] == {"thing1": {"value": "新客户"}}
    assert messages[0]["miniprogram_state"] == "formal" and messages[0]["lang"] == "zh_CN"
    assert isinstance(messages[0]["time"], float)
    assert await sim_control.messages(touser="o-other") == []
    assert await sim_control.subscriptions() == [
        {"openid": USER, "template_id": TEMPLATE, "count": 0}
    ]


async def test_send_checks_openid_template_and_page_in_order(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    token = (await stable(sim_http))["access_token"]
    await sim_control.grant(USER, TEMPLATE, 5)
    await sim_control.register_template(TEMPLATE)
    await sim_control.register_page("/pages/customer/detail")
    assert errcode(await send(sim_http, token, touser="", template_id="")) == 40003
    assert errcode(await send(sim_http, token, template_id="")) == 40037
    assert errcode(await send(sim_http, token, template_id="tmpl-unknown", page="x")) == 40037
    assert errcode(await send(sim_http, token, data={"thing1": ""}, page="nowhere")) == 47003
    assert errcode(await send(sim_http, token, page="pages/nowhere")) == 41030
    assert errcode(await send(sim_http, token, touser="o-no-credit", page="x")) == 41030
    assert errcode(await send(sim_http, token, page="pages/customer/detail?id=7")) == 0
    assert errcode(await send(sim_http, token, miniprogram_state="beta")) == 47003
    assert errcode(await sim_http.get("/cgi-bin/message/subscribe/send")) == 43002
    assert (await sim_control.subscriptions(USER))[0]["count"] == 4


async def test_long_term_templates_keep_their_grant(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    token = (await stable(sim_http))["access_token"]
    await sim_control.register_template(TEMPLATE, long_term=True)
    assert errcode(await send(sim_http, token)) == 43101  # still needs the user's accept
    await sim_control.grant(USER, TEMPLATE, 1)
    for _ in range(3):
        assert errcode(await send(sim_http, token)) == 0
    assert len(await sim_control.messages()) == 3


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("thing1", "一二三四五六七八九十一二三四五六七八九十一"),  # 21 characters
        ("thing1", "   "),
        ("thing1", "第一行\n第二行"),
        ("name3", "张三丰一二三四五六七八"),  # 11 with Chinese
        ("name3", "A" * 21),
        ("name3", "王2"),
        ("phrase4", "略略略略略略"),
        ("phrase4", "配送ok"),
        ("time2", "25:00"),
        ("time2", "2019年10月1日"),  # a date without a time
        ("date5", "2019-02-30"),
        ("date5", "明天"),
        ("number6", "12a"),
        ("number6", "1" * 33),
        ("letter7", "abc1"),
        ("symbol8", "!!!!!!"),
        ("character_string9", "订单A1"),
        ("character_string9", "A" * 33),
        ("amount10", "¥12345678901"),
        ("amount10", "一百元"),
        ("phone_number11", "138-abcd"),
        ("phone_number11", "1" * 18),
        ("car_number12", "粤A8Z888挂1"),  # 9 characters
        ("car_number12", "A粤8Z88"),
        ("enum13", ""),
        ("color14", "red"),  # no such keyword type
        ("thing", "没有编号"),
    ],
)
async def test_a_bad_value_gets_47003_naming_its_field(
    sim_http: httpx.AsyncClient, sim_control: SimControl, key: str, value: str
) -> None:
    token = (await stable(sim_http))["access_token"]
    await sim_control.grant(USER, TEMPLATE, 1)
    answer = await send(sim_http, token, data={"thing0": "前面的字段没问题", key: value})
    assert errcode(answer) == 47003
    assert answer.json()["errmsg"].startswith(f"argument invalid! data.{key}.value invalid rid: ")
    assert await sim_control.messages() == []
    assert (await sim_control.subscriptions())[0]["count"] == 1


async def test_good_values_of_every_type_are_accepted(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    token = (await stable(sim_http))["access_token"]
    await sim_control.grant(USER, TEMPLATE, 1)
    good = {
        "thing1": "一二三四五六七八九十一二三四五六七八九十",  # 20 characters
        "thing2": "Customer #12 想要联系您",
        "time3": "2024-01-01 12:00",
        "time4": "2019年10月1日 15:01",
        "time5": "15:01",
        "time6": "09:00:30 ~ 17:30",
        "date7": "2019年10月1日",
        "date8": "2018/01/01",
        "date9": "01-01",
        "date10": "2024-01-01 08:00~2024-01-02 08:00",
        "amount11": "¥100.50",
        "amount12": "100元",
        "phone_number13": "+86-0766-66888866",
        "car_number14": "粤A8Z888挂",
        "phrase15": "配送中",
        "name16": "欧阳·娜娜",
        "name17": "John Smith",
        "number18": "3.1415",
        "letter19": "abcXYZ",
        "symbol20": "%@#",
        "character_string21": "ORDER-2024_001",
        "enum22": "已完成",
    }
    answer = await send(sim_http, token, data=good)
    assert errcode(answer) == 0, answer.text


# -- invokecloudfunction -----------------------------------------------------------------------


async def test_cloud_functions_get_the_body_as_their_event(
    sim: SimServer, sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    token = (await stable(sim_http))["access_token"]

    async def invoke(name: str, body: bytes) -> httpx.Response:
        params = {"access_token": token, "env": "cloud1", "name": name}
        return await sim_http.post("/tcb/invokecloudfunction", params=params, content=body)

    assert errcode(await invoke("quickstartFunctions", b"")) == 44002
    assert errcode(await invoke("quickstartFunctions", b"[1, 2]")) == -501007
    assert errcode(await invoke("quickstartFunctions", b"{oops")) == -501007
    assert errcode(await invoke("noSuchFunction", b"{}")) == -504002

    event = {
        "type": "sendCustomerAssignNotify",
        "notificationData": {"assignedToOpenid": "o-advisor", "customerName": "张三"},
    }
    answer = (await invoke("quickstartFunctions", json.dumps(event).encode())).json()
    assert answer["errcode"] == 0 and isinstance(answer["resp_data"], str)
    assert json.loads(answer["resp_data"])["success"] is True
    unknown = (await invoke("quickstartFunctions", b'{"type": "other"}')).json()
    assert json.loads(unknown["resp_data"])["success"] is False
    missing = (await invoke("quickstartFunctions", b'{"type": "sendCustomerAssignNotify"}')).json()
    assert "error" in json.loads(missing["resp_data"])

    async def echo(event: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"got": event}

    def broken(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    sim.state.register_function("echo", echo)
    sim.state.register_function("broken", broken)
    echoed = (await invoke("echo", b'{"a": 1}')).json()
    assert json.loads(echoed["resp_data"]) == {"got": {"a": 1}}
    failed = await invoke("broken", b"{}")
    assert errcode(failed) == -504002 and "boom" in failed.json()["errmsg"]

    invocations = await sim_control.invocations()
    assert [i["name"] for i in invocations] == [
        "quickstartFunctions",
        "quickstartFunctions",
        "quickstartFunctions",
        "echo",
        "broken",
    ]
    assert invocations[0]["env"] == "cloud1" and invocations[0]["event"] == event


# -- getuserphonenumber ------------------------------------------------------------------------


async def test_a_phone_code_gives_the_number_once(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    token = (await stable(sim_http))["access_token"]
    code = await sim_control.mint_phone_code("13800138000")
    url = f"/wxa/business/getuserphonenumber?access_token={token}"
    answer = (await sim_http.post(url, json={"code": code})).json()
    assert answer["errcode"] == 0
    info = answer["phone_info"]
    assert info["phoneNumber"] == info["purePhoneNumber"] == "13800138000"
    assert info["countryCode"] == "86"
    assert info["watermark"]["appid"] == DEFAULT_APP_ID
    assert isinstance(info["watermark"]["timestamp"], int)
    assert errcode(await sim_http.post(url, json={"code": code})) == 40029
    assert errcode(await sim_http.post(url, json={"code": "never-minted"})) == 40029


# -- faults, stats, reset ----------------------------------------------------------------------


async def test_an_errcode_fault_answers_without_changing_anything(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    token = (await stable(sim_http))["access_token"]
    await sim_control.grant(USER, TEMPLATE, 1)
    await sim_control.fault("subscribe_send", count=2, errcode=-1)
    assert errcode(await send(sim_http, token)) == -1
    assert errcode(await send(sim_http, token)) == -1
    assert errcode(await send(sim_http, token)) == 0  # the credit was still there
    assert len(await sim_control.messages()) == 1

    code = await sim_control.mint_login_code(USER)
    await sim_control.fault("jscode2session", errcode=45011)
    assert errcode(await session(sim_http, code)) == 45011
    assert errcode(await session(sim_http, code)) == 0  # the code was not spent
    assert (await sim_control.stats())["calls"]["jscode2session"] == 2


async def test_an_http_status_fault_and_a_delay_fault(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    await sim_control.fault("stable_token", count=1, http_status=503)
    failed = await sim_http.post("/cgi-bin/stable_token", json={})
    assert failed.status_code == 503
    assert failed.json()["errcode"] == -1

    await sim_control.fault("stable_token", delay_ms=200)
    started = time.monotonic()
    answer = await stable(sim_http)
    assert time.monotonic() - started >= 0.2
    assert "access_token" in answer
    started = time.monotonic()
    await stable(sim_http)
    assert time.monotonic() - started < 0.2  # the fault was used up


async def test_bad_fault_requests_are_refused(sim_control: SimControl) -> None:
    for fault in ({}, {"errcode": -1, "http_status": 503}, {"http_status": 200}):
        with pytest.raises(httpx.HTTPStatusError):
            await sim_control.fault("token", **fault)
    with pytest.raises(httpx.HTTPStatusError):
        await sim_control.fault("nonsense", errcode=-1)  # type: ignore[arg-type]


async def test_stats_count_calls_and_token_fetches(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    await stable(sim_http)
    await stable(sim_http)  # the same token: fetched, not issued
    await plain_token(sim_http)
    await sim_control.fault("token", errcode=-1)
    params = {"grant_type": "client_credential", "appid": DEFAULT_APP_ID, "secret": SECRET}
    assert errcode(await sim_http.get("/cgi-bin/token", params=params)) == -1
    await session(sim_http, "unknown")
    stats = await sim_control.stats()
    assert stats == {
        "calls": {
            "jscode2session": 1,
            "token": 2,
            "stable_token": 2,
            "subscribe_send": 0,
            "invokecloudfunction": 0,
            "getuserphonenumber": 0,
        },
        "token_fetches": {"stable_token": 2, "token": 1},
        "tokens_issued": 2,
    }


async def test_reset_forgets_everything(
    sim_http: httpx.AsyncClient, sim_control: SimControl
) -> None:
    token = (await stable(sim_http))["access_token"]
    code = await sim_control.mint_login_code(USER)
    await sim_control.grant(USER, TEMPLATE, 1)
    await sim_control.register_template("tmpl-other")
    assert errcode(await send(sim_http, token, template_id="tmpl-other")) == 43101
    await sim_control.fault("subscribe_send", count=5, errcode=-1)
    await sim_control.advance_clock(1000)
    await sim_control.configure(token_ttl_seconds=60)

    await sim_control.reset()
    assert await token_check(sim_http, token) == 40014
    assert errcode(await session(sim_http, code)) == 40029
    assert await sim_control.subscriptions() == []
    assert abs(await sim_control.now() - time.time()) < 5
    fresh = await stable(sim_http)
    assert fresh["expires_in"] == 7200
    assert errcode(await send(sim_http, fresh["access_token"])) == 43101  # no fault, no credit
    assert (await sim_control.stats())["calls"]["subscribe_send"] == 2  # counted from the reset


# -- the command -------------------------------------------------------------------------------


def test_the_wechat_sim_command_serves_with_the_given_credentials() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "wxcrm", "wechat-sim", "--port", str(port)]
    command += ["--app-id", "wx1234567890abcdef", "--app-secret", "demo-secret"]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ)
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/sim/stats", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.05)
        body = {"grant_type": "client_credential", "appid": "wx1234567890abcdef"}
        assert (
            "access_token"
            in httpx.post(
                f"{base}/cgi-bin/stable_token", json={**body, "secret": "demo-secret"}
            ).json()
        )
        wrong = httpx.post(f"{base}/cgi-bin/stable_token", json={**body, "secret": SECRET})
        assert wrong.json()["errcode"] == 40125
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=15)
    assert server.returncode in (0, -15), output
    assert "demo-secret" not in output
