"""The body-size overrides name exact paths: an upload's neighbours carry no more than any
other request."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import assert_error

ONE_MIB = 1024 * 1024
TWO_MIB = b"x" * (2 * ONE_MIB)


@pytest.mark.parametrize(
    "path",
    [
        "/import/0123456789abcdef01234567/confirm",
        "/import/0123456789abcdef01234567/status",
        "/api/customers/import-template",
        "/api/customers/import/extra",
    ],
)
async def test_a_path_under_an_upload_keeps_the_default_limit(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, content=TWO_MIB)
    body = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert body["error"]["details"] == {"maxBytes": ONE_MIB}


@pytest.mark.parametrize("path", ["/import", "/api/customers/import"])
async def test_an_upload_path_takes_more(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, content=TWO_MIB)
    assert response.status_code != 413
