"""Pure ASGI middleware: request ids with an access log line and the request metrics,
body size limits, NUL characters refused at the door, and the headers every answer carries."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

import structlog
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wxcrm.core.envelope import error_response
from wxcrm.core.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = structlog.get_logger("wxcrm.request")

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Binds a request id to every log line of the request, and at its end logs one access
    line (with who called, when a route's credential said) and counts it in the metrics.

    An `X-Request-ID` from the proxy in front is kept (when it is a plain token of up to 64
    characters), so the proxy's log and ours name a request alike; either way the answer
    carries it back.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_OK.fullmatch(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        # The context is left bound afterwards: the 500 handler runs outside this
        # middleware and still needs the request id. The next request clears it.
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_LATENCY.labels(route, method).observe(seconds)
            log.info(
                "request",
                method=method,
                route=route,
                path=scope["path"],
                status=status,
                ms=round(seconds * 1000, 1),
            )


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/customers/{customer_id}`), so that metrics
    have one series per route, not per customer; `unmatched` when no route took it."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class _BodyTooLarge(StarletteHTTPException):
    """Raised from `receive`; an HTTPException so that FastAPI's body parsing lets it through."""

    def __init__(self) -> None:
        super().__init__(413)


class BodySizeLimitMiddleware:
    """Refuses bodies over `max_bytes` with a 413 envelope, declared or streamed.

    `overrides` maps an exact path to its own limit (file uploads need more room).
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, overrides: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    def _limit_for(self, path: str) -> int:
        # Exact: a prefix would let the upload's neighbours (/import/{id}/confirm) carry as much.
        return self.overrides.get(path, self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if response_started:
                raise
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(
            413, f"请求体过大，最大允许 {limit} 字节", "PAYLOAD_TOO_LARGE", {"maxBytes": limit}
        )
        await response(scope, receive, send)


METRICS_PATH = "/metrics"


class SecurityHeadersMiddleware:
    """`nosniff` on every answer; `no-store` on the API's, which carry customers' data, and
    on /metrics (figures of one moment)."""

    def __init__(self, app: ASGIApp, api_prefix: str = "/api") -> None:
        self.app = app
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        no_store = path.startswith(self.api_prefix) or path == METRICS_PATH

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if no_store and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


# A JSON string escape of U+0000: a backslash that is not itself escaped, then u0000.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
NUL_MESSAGE = "不能包含空字符（\\u0000）"
_SCANNED_BODIES = (b"application/json", b"application/x-www-form-urlencoded")


class RefuseNulMiddleware:
    """Refuses a NUL character anywhere in the path, the query or a JSON or form body.

    PostgreSQL cannot store U+0000 in text, and no field of ours has a use for it:
    refusing it here, once, covers every string field and parameter, present and future.
    Binary uploads (multipart) are left to the code that reads them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        field = _nul_in_url(scope)
        if field is not None:
            await _refuse_nul(scope, receive, send, field)
            return
        content_type = dict(scope["headers"]).get(b"content-type", b"").lower()
        if not content_type.startswith(_SCANNED_BODIES):
            await self.app(scope, receive, send)
            return

        body, messages = b"", []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        field = _nul_in_body(body, content_type)
        if field is not None:
            await _refuse_nul(scope, receive, send, field)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _nul_in_url(scope: Scope) -> str | None:
    if "\x00" in scope["path"]:
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"\x00" in query or b"%00" in query:
        for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in key or "\x00" in value:
                return key.replace("\x00", "") or "query"
        return "query"
    return None


def _nul_in_body(body: bytes, content_type: bytes) -> str | None:
    if content_type.startswith(b"application/x-www-form-urlencoded"):
        return "body" if b"\x00" in unquote_to_bytes(body) else None
    if not _JSON_NUL.search(body):
        return None
    try:
        return _path_to_nul(json.loads(body)) or "body"
    except ValueError:
        return "body"  # not JSON after all: the route's own parsing would refuse it too


def _path_to_nul(value: Any, path: str = "") -> str | None:
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return path or "body"
        found = _path_to_nul(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


async def _refuse_nul(scope: Scope, receive: Receive, send: Send, field: str) -> None:
    details = [{"field": field, "message": NUL_MESSAGE}]
    response = error_response(
        400, f"请求参数错误：{field} {NUL_MESSAGE}", "VALIDATION_ERROR", details
    )
    await response(scope, receive, send)
