"""/openapi.json describes every answer: each success's envelope and `data`, each failure's
error envelope, and the media type of what is not JSON (downloads, plain text)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import asgi_client, assert_error
from wxcrm.app import create_app
from wxcrm.core.db import Database
from wxcrm.core.envelope import ErrorEnvelope
from wxcrm.core.settings import Settings

# The failures the app declares once for every route; "default" covers 405, 415, 500, 502.
ERROR_STATUSES = ["400", "401", "403", "404", "409", "413", "429", "503", "default"]
ERROR_REF = "#/components/schemas/ErrorEnvelope"
ENVELOPE_FIELDS = {"success", "data", "message", "timestamp"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
async def openapi(settings: Settings, database: Database) -> dict[str, Any]:
    """/openapi.json of an app as `create_app` builds it: tests add routes to the shared one."""
    app = create_app(settings, database=database, run_migrations=False)
    async with asgi_client(app) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def operations(openapi: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield f"{method.upper()} {path}", operation


def component(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any] | None:
    ref = schema.get("$ref", "")
    prefix = "#/components/schemas/"
    if not ref.startswith(prefix):
        return None
    found: dict[str, Any] = openapi["components"]["schemas"][ref.removeprefix(prefix)]
    return found


def success_problem(openapi: dict[str, Any], operation: dict[str, Any]) -> str | None:
    """Why the operation's success is not described, or None when it is."""
    successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
    if not successes:
        return "no 2xx answer"
    for status, response in successes.items():
        content: dict[str, Any] = response.get("content") or {}
        if not content:
            return f"{status} declares no media type"
        for media_type, body in content.items():
            schema = body.get("schema")
            if not schema:
                return f"{status} {media_type} has no schema"
            if media_type != "application/json":
                continue  # a download or plain text: its declared media type says what it is
            envelope = component(openapi, schema)
            if envelope is None or not ENVELOPE_FIELDS <= set(envelope.get("properties", {})):
                return f"{status} is no Envelope model: {schema.get('type', schema)}"
            data = envelope["properties"]["data"]
            if data.get("type") == "object" and "properties" not in data and "$ref" not in data:
                return f"{status} data is a free-form object"
    return None


async def test_every_success_has_a_declared_shape(openapi: dict[str, Any]) -> None:
    missing = {
        name: problem
        for name, operation in operations(openapi)
        if (problem := success_problem(openapi, operation)) is not None
    }
    assert not missing, "operations without a response schema:\n" + "\n".join(
        f"  {name}: {problem}" for name, problem in sorted(missing.items())
    )


async def test_every_failure_is_the_error_envelope(openapi: dict[str, Any]) -> None:
    wrong = []
    for name, operation in operations(openapi):
        responses = operation["responses"]
        wrong += [f"{name}: no {status}" for status in ERROR_STATUSES if status not in responses]
        for status, response in responses.items():
            if status.startswith("2"):
                continue
            schema = (response.get("content") or {}).get("application/json", {}).get("schema")
            if schema != {"$ref": ERROR_REF}:
                wrong.append(f"{name}: {status} is {schema}")
    assert not wrong, "failures not described as ErrorEnvelope:\n" + "\n".join(wrong)


async def test_no_422_is_documented(openapi: dict[str, Any]) -> None:
    # Bad input is a 400 here: FastAPI's default 422 would describe an answer never sent.
    assert [
        name for name, operation in operations(openapi) if "422" in operation["responses"]
    ] == []


async def test_downloads_declare_their_media_types(openapi: dict[str, Any]) -> None:
    for path in ("/api/customers/export", "/api/customers/import-template"):
        content = openapi["paths"][path]["get"]["responses"]["200"]["content"]
        assert set(content) == {
            "text/csv",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    for method in ("get", "post"):
        content = openapi["paths"]["/api/wechat/push"][method]["responses"]["200"]["content"]
        assert set(content) == {"text/plain"}


async def test_error_envelope_schema_matches_real_failures(client: httpx.AsyncClient) -> None:
    failures = [
        (await client.get("/api/no-such-thing"), 404, "NOT_FOUND"),
        (await client.get("/api/auth/me"), 401, "UNAUTHORIZED"),
        (await client.post("/api/auth/login", json={}), 400, "VALIDATION_ERROR"),
        (await client.delete("/api/auth/login"), 405, "METHOD_NOT_ALLOWED"),
    ]
    for response, status, code in failures:
        body = assert_error(response, status, code)
        ErrorEnvelope.model_validate_json(response.text, strict=True)
        assert list(body) == list(ErrorEnvelope.model_fields)
