"""Fixtures for the mini-program API: the seed's action request and an app with WeChat's
message push configured. Session tokens, staff and the committed app are shared
(tests/factories.py, tests/conftest.py)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from wxcrm.core.settings import Settings

PUSH_TOKEN = "push-token-for-tests"


def action_body(openid: str, advisor_id: str, **overrides: object) -> dict[str, object]:
    """Seed 000's request example, for this customer and advisor."""
    body: dict[str, object] = {
        "customerId": openid,
        "advisorId": advisor_id,
        "actionType": "view_resume",
        "actionData": {"resumeId": "简历ID", "timestamp": "2024-01-01T12:00:00.000Z"},
        "customerName": "张三",
        "customerPhone": "13800138000",
    }
    body.update(overrides)
    return body


@pytest.fixture
def push_app(app: FastAPI, settings: Settings) -> FastAPI:
    """The app, with the push's token configured (plain-text mode)."""
    app.state.settings = settings.model_copy(update={"wechat_push_token": SecretStr(PUSH_TOKEN)})
    return app
