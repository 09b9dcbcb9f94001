"""How every console page is routed and rendered: refusals as pages, CSRF on every
state-changing request, the frame around each page."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from wxcrm.console.frame import frame_for
from wxcrm.console.session import (
    NONCE_COOKIE,
    SAFE_METHODS,
    SESSION_COOKIE,
    SignInRequired,
    guard_csrf,
    page_csrf,
    set_cookie,
)
from wxcrm.console.templating import render
from wxcrm.core.errors import AppError, NotFound, ValidationFailed
from wxcrm.core.ids import is_object_id
from wxcrm.core.middleware import NUL_MESSAGE
from wxcrm.core.settings import Settings
from wxcrm.users.models import User


class ConsoleRoute(APIRoute):
    """Answers a refusal as a page, not as the API's JSON envelope: no session sends the
    browser to the sign-in page (htmx through HX-Redirect), anything else shows its message."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handle(request)
            except SignInRequired:
                response: Response = RedirectResponse("/login", status_code=303)
                if request.headers.get("HX-Request"):
                    response = Response(status_code=204, headers={"HX-Redirect": "/login"})
                response.delete_cookie(SESSION_COOKIE, path="/")
                return response
            except AppError as refused:
                return render(request, "error.html", refused.status_code, message=refused.message)

        return answer


async def refuse_nul_in_uploads(request: Request) -> None:
    """A multipart form (the import's upload, or any form sent so) with a NUL in a field or a
    file name is refused: RefuseNulMiddleware leaves multipart bodies to their readers, and
    PostgreSQL cannot store U+0000 in text."""
    if request.method in SAFE_METHODS:
        return
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return
    for name, value in (await request.form()).multi_items():
        text = value if isinstance(value, str) else (value.filename or "")
        if "\x00" in text or "\x00" in name:
            raise ValidationFailed.on_field(name, f"{name} {NUL_MESSAGE}")


def console_router() -> APIRouter:
    """A router for console pages: not in the API's OpenAPI, CSRF-guarded, refusals as pages."""
    return APIRouter(
        route_class=ConsoleRoute,
        include_in_schema=False,
        dependencies=[Depends(guard_csrf), Depends(refuse_nul_in_uploads)],
    )


FLASH_COOKIE = "wxcrm_flash"


def done(request: Request, url: str, message: str) -> Response:
    """An action succeeded: go to `url` (a local path) and say `message` there as a toast.
    htmx navigates without reloading (HX-Location); a plain form follows a 303."""
    if not url.startswith("/") or url.startswith("//"):
        url = "/"
    response: Response
    if request.headers.get("HX-Request"):
        response = Response(status_code=204, headers={"HX-Location": url})
    else:
        response = RedirectResponse(url, status_code=303)
    set_cookie(request, response, FLASH_COOKIE, quote(message), max_age=60)
    return response


def toast(response: Response, message: str, tone: str = "success") -> Response:
    """Say `message` as a toast when htmx swaps `response` in (console.js listens)."""
    # ASCII JSON: a header holds Latin-1 only; htmx decodes the escapes.
    payload = {"toast": {"message": message, "tone": tone}}
    response.headers["HX-Trigger"] = json.dumps(payload, ensure_ascii=True)
    return response


def object_id(value: str, missing: str) -> str:
    """An id from the path; anything else ("export", a typo) is a 404 saying `missing`,
    not a query for a row that cannot exist."""
    if not is_object_id(value):
        raise NotFound(missing)
    return value


def render_page(
    request: Request,
    settings: Settings,
    user: User,
    template: str,
    *,
    active: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page inside the frame (`active`: its menu key), with this session's CSRF token."""
    csrf, fresh_nonce = page_csrf(request, settings)
    flash = request.cookies.get(FLASH_COOKIE)
    frame = frame_for(user, active=active, csrf=csrf, flash=unquote(flash)[:200] if flash else None)
    response = render(request, template, status_code, frame=frame, **context)
    if fresh_nonce is not None:
        set_cookie(request, response, NONCE_COOKIE, fresh_nonce, max_age=None)
    if request.headers.get("HX-Request") and not request.headers.get("HX-Boosted"):
        # htmx asked for a region but gets the whole page (a refused query, told beside its
        # fields): it replaces the body, as a boosted navigation's does.
        response.headers["HX-Retarget"] = "body"
        response.headers["HX-Reswap"] = "innerHTML"
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response
