"""Helpers for the staff mini program's customer endpoints: their envelope (success, or a
refusal with the route's normal status), and a scan of answers for secrets."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx

from wxcrm.customers.models import Customer
from wxcrm.users.models import User

BASE = "/api/customers/miniprogram"
# Keys no answer may carry, at any depth.
SECRET_KEYS = {"password", "passwordHash", "password_hash", "openid", "assignedToOpenid"}


def ok(response: httpx.Response, message: str, status: int = 200) -> Any:
    """The data of a success: `{success, message, data, timestamp}` and no `error`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"success", "message", "data", "timestamp"}, body
    assert body["success"] is True and body["message"] == message, body
    assert isinstance(body["timestamp"], int)
    return body["data"]


def refused(response: httpx.Response, message: str, error: str, status: int = 200) -> None:
    """A refused operation, in the original's style: the route's normal status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body == {
        "success": False,
        "message": message,
        "data": None,
        "error": error,
        "timestamp": body["timestamp"],
    }
    assert isinstance(body["timestamp"], int)


def _keys(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def assert_no_secrets(
    response: httpx.Response, users: Iterable[User], customers: Iterable[Customer] = ()
) -> None:
    """Neither a password hash nor a staff member's or a lead's openid, under any key."""
    text = response.text
    assert not SECRET_KEYS & set(_keys(json.loads(text))), text
    for user in users:
        assert user.password_hash not in text
        assert not user.openid or user.openid not in text
    for customer in customers:
        assert not customer.openid or customer.openid not in text
