"""Every failure a client can cause comes back as the 4xx envelope, never a 500."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import assert_error
from wxcrm.core.logging import configure_logging


async def test_unknown_route_is_a_404_envelope(client: httpx.AsyncClient) -> None:
    body = assert_error(await client.get("/api/no-such-thing"), 404, "NOT_FOUND")
    assert body["message"] == "接口不存在"


async def test_wrong_method_is_a_405_envelope(client: httpx.AsyncClient) -> None:
    assert_error(await client.delete("/api/auth/login"), 405, "METHOD_NOT_ALLOWED")


async def test_malformed_json_is_a_400_naming_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/login",
        content=b'{"username": "a",',
        headers={"content-type": "application/json"},
    )
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["error"]["details"] == [{"field": "body", "message": "请求体不是合法的JSON"}]


async def test_wrong_field_type_lists_each_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/login", json={"username": 123})
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["error"]["details"] == [
        {"field": "username", "message": "必须是字符串"},
        {"field": "password", "message": "该字段为必填项"},
    ]
    assert "username" in body["message"]


async def test_too_long_field_names_its_limit(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/login", json={"username": "u" * 65, "password": "p"})
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["error"]["details"] == [{"field": "username", "message": "长度不能超过64个字符"}]


async def test_body_that_is_not_an_object_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/login", json=["username", "password"])
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_declared_oversized_body_is_a_413(client: httpx.AsyncClient) -> None:
    big = json.dumps({"username": "u", "password": "p" * (2 * 1024 * 1024)})
    response = await client.post(
        "/api/auth/login", content=big, headers={"content-type": "application/json"}
    )
    body = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert body["error"]["details"] == {"maxBytes": 1024 * 1024}


async def test_streamed_oversized_body_without_length_is_a_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"username": "u", "password": "'
        for _ in range(40):
            yield b"p" * 64 * 1024
        yield b'"}'

    response = await client.post(
        "/api/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_a_bug_is_a_500_without_internals_and_the_traceback_is_logged(
    app: FastAPI,
    client: httpx.AsyncClient,
    capfd: pytest.CaptureFixture[str],
    structured_logs: None,
) -> None:

    @app.get("/api/test-bug")
    async def bug() -> None:
        raise RuntimeError("password=hunter2 in a stack frame")

    configure_logging("INFO", "json", cache_loggers=False)
    response = await client.get("/api/test-bug", headers={"x-request-id": "req-bug-1"})
    body = assert_error(response, 500, "INTERNAL_ERROR")
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert body["message"] == "服务器内部错误"
    logged = [
        json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")
    ]
    error_lines = [line for line in logged if line["event"] == "unhandled error"]
    assert len(error_lines) == 1
    assert "Traceback" in error_lines[0]["exception"]
    assert error_lines[0]["request_id"] == "req-bug-1"
    assert response.headers["x-request-id"] == "req-bug-1"


async def test_success_envelope_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health/live")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "data", "message", "timestamp"}
    assert body["success"] is True
