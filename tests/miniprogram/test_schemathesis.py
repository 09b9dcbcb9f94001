"""Requests generated from the app's own OpenAPI document (schemathesis) against the
mini-program endpoints: no response is a 500, every body is the envelope, and every body
conforms to the response schema the document declares for its status.

Schemathesis only generates here: each case is sent in-process through the test's `client`
(httpx over ASGI), so the requests run in the test's transaction on SQLite and PostgreSQL
alike. Both generation modes run: positive (bodies that fit the schema) and negative (bodies
that do not, or are no JSON at all). Positive-looking bodies are nudged, some of the time,
towards values that get past the checks a schema cannot express (the customer's own openid,
an existing advisor, a login code WeChat knows), so the code behind those checks runs too.

A 502 is allowed where the endpoint waited on WeChat and WeChat answered with an error
(README): generated openids and template ids are unknown to the simulator.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import ACTION_TEMPLATE
from tests.factories import make_user, mp_headers
from wxcrm.core.settings import Settings
from wxcrm.users.models import Role
from wxcrm.users.service import issue_staff_token
from wxcrm.wechat.sim import SimControl

OPERATIONS = [
    "/api/wechat/openid",
    "/api/wechat/phone",
    "/api/advisor/subscribe",
    "/api/customer/action",
    "/api/message/send",
]
# Generated requests per operation and generation mode: 100 per operation in all.
MAX_EXAMPLES = 50

CUSTOMER_OPENID = "o-schemathesis-customer"
ADVISOR_OPENID = "o-schemathesis-advisor"
# The simulator lets this openid receive the action template's messages many times over.
GRANTED_OPENID = "o-schemathesis-granted"
VERIFIED_PHONE = "13912345678"
# Template keys of each keyword type (a key's prefix is its type).
KEYWORD_KEYS = [
    "thing1",
    "time2",
    "name3",
    "phrase4",
    "number5",
    "character_string6",
    "phone_number7",
    "date8",
    "amount9",
    "letter10",
    "symbol11",
    "car_number12",
]

# The endpoints that wait on WeChat, where WeChat's own error is a 502.
WAITS_ON_WECHAT = {"/api/wechat/openid", "/api/wechat/phone", "/api/message/send"}
ALLOWED_STATUSES = {200, 400, 401, 403, 404, 409, 413, 429, 502}
ERROR_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class World:
    """Who the generated requests act as, and the rows they may refer to."""

    advisor_id: str
    headers: dict[str, dict[str, str]]  # per operation


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def world(
    session: AsyncSession, settings: Settings, sim_control: SimControl, wechat_token: str
) -> World:
    # The advisor can be notified: customer actions queue a message in their transaction.
    advisor = await make_user(session, name="顾问", openid=ADVISOR_OPENID, credits=1_000)
    manager = await make_user(session, Role.manager, name="经理")
    # Committed (a savepoint released): a refused request's rollback must not take it away.
    await session.commit()
    # With a template registered, the simulator refuses unknown template ids (40037) at once.
    await sim_control.register_template(ACTION_TEMPLATE)
    await sim_control.grant(GRANTED_OPENID, ACTION_TEMPLATE, 10_000)

    customer = mp_headers(CUSTOMER_OPENID)
    advisor_headers = _bearer(issue_staff_token(settings, advisor)[0])
    manager_headers = _bearer(issue_staff_token(settings, manager)[0])
    return World(
        advisor_id=advisor.id,
        headers={
            "/api/wechat/openid": {},
            "/api/wechat/phone": customer,
            "/api/advisor/subscribe": advisor_headers,
            "/api/customer/action": customer,
            "/api/message/send": manager_headers,
        },
    )


@cache
def _schema(document: str) -> Any:
    return schemathesis.openapi.from_dict(json.loads(document))


def cases(app: FastAPI, path: str, mode: GenerationMode) -> st.SearchStrategy[Case[Any]]:
    schema = _schema(json.dumps(app.openapi(), sort_keys=True))
    strategy: st.SearchStrategy[Case[Any]] = schema[path]["POST"].as_strategy(generation_mode=mode)
    return strategy


async def nudge(
    path: str, body: dict[str, Any], world: World, sim_control: SimControl, data: st.DataObject
) -> None:
    """Some of the time, make a generated body pass the checks the schema cannot express."""
    if path == "/api/customer/action":
        if data.draw(st.integers(0, 3), label="own openid") > 0:
            body["customerId"] = CUSTOMER_OPENID
        if data.draw(st.integers(0, 3), label="real advisor") > 0:
            body["advisorId"] = world.advisor_id
    elif path == "/api/advisor/subscribe":
        if data.draw(st.integers(0, 3), label="own advisor id") > 0:
            body["advisorId"] = world.advisor_id
        if data.draw(st.booleans(), label="own openid"):
            body["openid"] = ADVISOR_OPENID
    elif path == "/api/message/send":
        if data.draw(st.booleans(), label="granted recipient"):
            body["touser"] = GRANTED_OPENID
            body["template_id"] = ACTION_TEMPLATE
        values = body.get("data")
        if isinstance(values, dict) and data.draw(st.booleans(), label="keyword keys"):
            # The generated values under real keyword keys, to be fitted to their types.
            body["data"] = dict(zip(KEYWORD_KEYS, values.values(), strict=False))
    elif path == "/api/wechat/openid":
        if data.draw(st.integers(0, 3), label="known login code") == 0:
            body["code"] = await sim_control.mint_login_code(CUSTOMER_OPENID)
    elif path == "/api/wechat/phone" and data.draw(st.integers(0, 3), label="known code") == 0:
        body["code"] = await sim_control.mint_phone_code(VERIFIED_PHONE)


def request_of(case: Case[Any], world: World, path: str) -> dict[str, Any]:
    """httpx arguments for a generated case, with the operation's credentials."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    request: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "params": kwargs.get("params") or None,
        "headers": {**kwargs.get("headers", {}), **world.headers[path]},
    }
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        request["content"] = data.encode() if isinstance(data, str) else data
    return request


def describe(request: dict[str, Any]) -> str:
    shown = {key: value for key, value in request.items() if key != "headers"}
    text = repr(shown)
    return text if len(text) <= 2000 else text[:2000] + "…"


def check_envelope(path: str, request: dict[str, Any], response: httpx.Response) -> None:
    where = f"{describe(request)}\n→ {response.status_code} {response.text[:2000]}"
    status = response.status_code
    assert status != 500, f"a 500 for generated input:\n{where}"
    assert status in ALLOWED_STATUSES, f"unexpected status:\n{where}"
    body = response.json()
    assert isinstance(body, dict), where
    assert isinstance(body.get("success"), bool), where
    assert isinstance(body.get("message"), str) and body["message"], where
    assert isinstance(body.get("timestamp"), int), where
    assert "data" in body, where
    if body["success"]:
        assert status == 200, where
        return
    assert status >= 400, where
    assert body["data"] is None, where
    code = body["error"]["code"]
    assert isinstance(code, str) and ERROR_CODE.fullmatch(code), where
    if status == 502:
        assert path in WAITS_ON_WECHAT and code == "WECHAT_ERROR", where
        # Values are fitted first: WeChat never sees data it refuses.
        assert body["error"]["details"]["errcode"] != 47003, where
    if code == "VALIDATION_ERROR":
        details = body["error"]["details"]
        assert isinstance(details, list) and details, where
        for detail in details:
            assert set(detail) == {"field", "message"}, where
            assert isinstance(detail["field"], str) and detail["field"], where
            assert isinstance(detail["message"], str) and detail["message"], where


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
@pytest.mark.parametrize("path", OPERATIONS)
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    # The fixtures (one app, one transaction) are shared by a test's examples on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_generated_requests_get_the_envelope_and_never_a_500(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    sim_control: SimControl,
    path: str,
    mode: GenerationMode,
    data: st.DataObject,
) -> None:
    case = data.draw(cases(app, path, mode), label="case")
    if isinstance(case.body, dict):
        await nudge(path, case.body, world, sim_control, data)
    request = request_of(case, world, path)
    response = await client.request(**request)
    # Shown by `pytest --hypothesis-show-statistics`: what the generated requests came to.
    event("status", f"{response.status_code} {response.json().get('error', {}).get('code', '')}")
    check_envelope(path, request, response)
    # And the body is what /openapi.json says it is, for success and failure alike.
    case.validate_response(response, checks=[response_schema_conformance])
