"""Fitted template data is never refused by the simulator's 47003 check, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.wechat.test_keywords import any_value
from wxcrm.wechat.keywords import KeywordType, UnfittableValue, fit_value
from wxcrm.wechat.sim import SimServer

TEMPLATE = "tmpl-every-keyword-type"
OPENID = "o-property-advisor"
KEYS = {kind: f"{kind.value}{n}" for n, kind in enumerate(KeywordType, start=1)}


@pytest.fixture(scope="module")
def send(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=10) as http:
        http.post("/sim/reset").raise_for_status()
        # Long-term, accepted once: sending never spends the grant, only the data decides.
        http.post(
            "/sim/templates", json={"template_id": TEMPLATE, "long_term": True}
        ).raise_for_status()
        http.post(
            "/sim/subscriptions", json={"openid": OPENID, "template_id": TEMPLATE, "count": 1}
        ).raise_for_status()
        token = http.post(
            "/cgi-bin/stable_token",
            json={
                "grant_type": "client_credential",
                "appid": "wx0000000000000000",
                "secret": "sim-app-secret",
            },
        ).json()["access_token"]
        http.params = httpx.QueryParams(access_token=token)
        yield http


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.fixed_dictionaries(dict.fromkeys(KeywordType, any_value)))
def test_no_fitted_value_is_refused_by_wechats_rules(
    send: httpx.Client, values: dict[KeywordType, object]
) -> None:
    data = {}
    for kind, value in values.items():
        try:
            data[KEYS[kind]] = {"value": fit_value(kind, value, key=KEYS[kind])}
        except UnfittableValue:
            continue  # refused before sending: the other way a 47003 is never earned
    if not data:
        return
    answer = send.post(
        "/cgi-bin/message/subscribe/send",
        json={"touser": OPENID, "template_id": TEMPLATE, "data": data},
    ).json()
    assert answer.get("errcode") == 0, (answer, data)
