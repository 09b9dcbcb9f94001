"""The simulator's HTTP face: WeChat's endpoints as WeChat answers them, and `/sim/` to
steer it (mint codes, grant credits, inject faults, move the clock, read what was sent)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Self

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from wxcrm.wechat.sim.state import (
    CODE_TTL,
    Endpoint,
    SimError,
    SimState,
    TokenFamily,
    as_dict,
)

log = logging.getLogger(__name__)

Handler = Callable[[SimState, Request], Awaitable[dict[str, Any]]]
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _rid() -> str:
    return f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def _error_body(errcode: int, errmsg: str) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": f"{errmsg} rid: {_rid()}"}


async def _json_body(request: Request) -> object:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise SimError(47001) from exc


# -- WeChat's endpoints ------------------------------------------------------------------------


async def _jscode2session(state: SimState, request: Request) -> dict[str, Any]:
    q = request.query_params
    return state.code2session(
        q.get("appid"), q.get("secret"), q.get("js_code"), q.get("grant_type")
    )


async def _token(state: SimState, request: Request) -> dict[str, Any]:
    q = request.query_params
    return state.client_credential_token(q.get("appid"), q.get("secret"), q.get("grant_type"))


async def _stable_token(state: SimState, request: Request) -> dict[str, Any]:
    return state.stable_token(await _json_body(request))


async def _subscribe_send(state: SimState, request: Request) -> dict[str, Any]:
    token = request.query_params.get("access_token")
    return state.send_subscribe(token, await _json_body(request))


async def _invokecloudfunction(state: SimState, request: Request) -> dict[str, Any]:
    q = request.query_params
    raw = await request.body()
    return await state.invoke_cloud_function(
        q.get("access_token"), q.get("env"), q.get("name"), raw
    )


async def _getuserphonenumber(state: SimState, request: Request) -> dict[str, Any]:
    token = request.query_params.get("access_token")
    return state.phone_number(token, await _json_body(request))


WECHAT_ROUTES: dict[Endpoint, tuple[str, str, Handler]] = {
    "jscode2session": ("/sns/jscode2session", "GET", _jscode2session),
    "token": ("/cgi-bin/token", "GET", _token),
    "stable_token": ("/cgi-bin/stable_token", "POST", _stable_token),
    "subscribe_send": ("/cgi-bin/message/subscribe/send", "POST", _subscribe_send),
    "invokecloudfunction": ("/tcb/invokecloudfunction", "POST", _invokecloudfunction),
    "getuserphonenumber": ("/wxa/business/getuserphonenumber", "POST", _getuserphonenumber),
}


def _wechat_route(
    state: SimState, endpoint: Endpoint, method: str, handler: Handler
) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def route(request: Request) -> JSONResponse:
        fault = state.begin_call(endpoint)
        if fault is not None:
            if fault.delay_ms:
                await asyncio.sleep(fault.delay_ms / 1000)
            if fault.http_status is not None:
                log.info("wechat-sim %s: fault, HTTP %s", endpoint, fault.http_status)
                body = _error_body(-1, fault.errmsg or "system error")
                return JSONResponse(body, status_code=fault.http_status)
            if fault.errcode is not None:
                log.info("wechat-sim %s: fault, errcode %s", endpoint, fault.errcode)
                error = SimError(fault.errcode, fault.errmsg)
                return JSONResponse(_error_body(error.errcode, error.errmsg))
        try:
            if request.method != method:
                raise SimError(43002 if method == "POST" else 43001)
            answer = await handler(state, request)
        except SimError as exc:
            log.info("wechat-sim %s: errcode %s", endpoint, exc.errcode)
            return JSONResponse(_error_body(exc.errcode, exc.errmsg))
        log.info("wechat-sim %s: ok", endpoint)
        return JSONResponse(answer)

    return route


# -- control -----------------------------------------------------------------------------------


class LoginCodeIn(BaseModel):
    openid: str = Field(min_length=1)
    unionid: str | None = None


class PhoneCodeIn(BaseModel):
    phone: str = Field(min_length=1, pattern=r"^[0-9]{5,20}$")


class GrantIn(BaseModel):
    openid: str = Field(min_length=1)
    template_id: str = Field(min_length=1)
    count: int = Field(1, ge=1)


class TemplateIn(BaseModel):
    template_id: str = Field(min_length=1)
    long_term: bool = False


class PageIn(BaseModel):
    page: str = Field(min_length=1)


class FaultIn(BaseModel):
    endpoint: Endpoint
    count: int = Field(1, ge=1)
    errcode: int | None = None
    http_status: int | None = Field(None, ge=400, le=599)
    delay_ms: int | None = Field(None, ge=0, le=60_000)
    errmsg: str | None = None

    @model_validator(mode="after")
    def _one_effect(self) -> Self:
        if self.errcode is None and self.http_status is None and self.delay_ms is None:
            raise ValueError("give an errcode, an http_status or a delay_ms")
        if self.errcode is not None and self.http_status is not None:
            raise ValueError("give an errcode or an http_status, not both")
        return self


class InvalidateIn(BaseModel):
    family: TokenFamily = TokenFamily.stable


class ClockIn(BaseModel):
    advance_seconds: float = Field(ge=0)


class ConfigIn(BaseModel):
    token_ttl_seconds: int | None = Field(None, ge=1)


def _config(state: SimState) -> dict[str, Any]:
    return {
        "app_id": state.app_id,
        "any_app_id": state.any_app_id,
        "token_ttl_seconds": state.token_ttl_seconds,
    }


def _control_router(state: SimState) -> APIRouter:
    router = APIRouter(prefix="/sim", tags=["control"])

    @router.post("/login-codes")
    async def mint_login_code(body: LoginCodeIn) -> dict[str, Any]:
        """Mint a single-use login code for an openid, as `wx.login()` would get."""
        return {"code": state.mint_login_code(body.openid, body.unionid), "expires_in": CODE_TTL}

    @router.post("/phone-codes")
    async def mint_phone_code(body: PhoneCodeIn) -> dict[str, Any]:
        """Mint a single-use phone-number code, as the getPhoneNumber button would get."""
        return {"code": state.mint_phone_code(body.phone), "expires_in": CODE_TTL}

    @router.post("/subscriptions")
    async def grant(body: GrantIn) -> dict[str, Any]:
        """Grant sends of a template to a user, as that many subscription accepts would."""
        total = state.grant(body.openid, body.template_id, body.count)
        return {"openid": body.openid, "template_id": body.template_id, "count": total}

    @router.get("/subscriptions")
    async def subscriptions(openid: str | None = None) -> dict[str, Any]:
        """Sends left per user and template."""
        return {"subscriptions": state.subscriptions(openid)}

    @router.post("/templates")
    async def register_template(body: TemplateIn) -> dict[str, Any]:
        """Register a template; from then on unknown template ids get 40037."""
        state.register_template(body.template_id, body.long_term)
        return {"template_id": body.template_id, "long_term": body.long_term}

    @router.get("/templates")
    async def templates() -> dict[str, Any]:
        """The registered templates."""
        listed = [{"template_id": t, "long_term": lt} for t, lt in state.templates.items()]
        return {"templates": listed}

    @router.post("/pages")
    async def register_page(body: PageIn) -> dict[str, Any]:
        """Register a mini-program page; from then on other pages get 41030."""
        state.register_page(body.page)
        return {"pages": sorted(state.pages)}

    @router.get("/pages")
    async def pages() -> dict[str, Any]:
        """The registered pages."""
        return {"pages": sorted(state.pages)}

    @router.get("/messages")
    async def messages(touser: str | None = None) -> dict[str, Any]:
        """Subscribe messages sent, oldest first."""
        sent = [as_dict(m) for m in state.messages if touser is None or m.touser == touser]
        return {"messages": sent}

    @router.get("/invocations")
    async def invocations() -> dict[str, Any]:
        """Cloud function invocations, oldest first."""
        return {"invocations": [as_dict(i) for i in state.invocations]}

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        """Calls per endpoint, token fetches per family, tokens issued."""
        return state.stats()

    @router.post("/faults")
    async def add_fault(body: FaultIn) -> dict[str, Any]:
        """Make the next `count` calls of an endpoint fail, or wait first."""
        fault = state.add_fault(
            body.endpoint,
            body.count,
            errcode=body.errcode,
            http_status=body.http_status,
            delay_ms=body.delay_ms,
            errmsg=body.errmsg,
        )
        return as_dict(fault)

    @router.get("/faults")
    async def faults() -> dict[str, Any]:
        """Faults still queued, with the calls each has left."""
        return {"faults": [as_dict(f) for f in state.faults]}

    @router.post("/tokens/expire")
    async def expire_tokens() -> dict[str, Any]:
        """Expire every token still good: calls with them get 42001."""
        return {"expired": state.expire_tokens()}

    @router.post("/tokens/invalidate")
    async def invalidate_token(body: InvalidateIn | None = None) -> dict[str, Any]:
        """Invalidate the current stable token (or `family: token`): calls get 40001."""
        family = (body or InvalidateIn()).family
        return {"invalidated": state.invalidate_token(family)}

    @router.get("/clock")
    async def clock() -> dict[str, Any]:
        """The simulator's time, in Unix seconds."""
        return {"now": state.now(), "offset_seconds": state.clock_offset}

    @router.post("/clock")
    async def advance_clock(body: ClockIn) -> dict[str, Any]:
        """Move the simulator's clock forward, to expire codes and tokens without waiting."""
        return {
            "now": state.advance_clock(body.advance_seconds),
            "offset_seconds": state.clock_offset,
        }

    @router.get("/config")
    async def config() -> dict[str, Any]:
        """The app id accepted and the TTL of new tokens."""
        return _config(state)

    @router.post("/config")
    async def configure(body: ConfigIn) -> dict[str, Any]:
        """Set the TTL of tokens issued from now on."""
        state.configure(token_ttl_seconds=body.token_ttl_seconds)
        return _config(state)

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        """Forget everything: codes, tokens, credits, messages, faults, stats, clock, config."""
        state.reset()
        return {"reset": True}

    return router


async def _bad_control_value(_request: Request, exc: Exception) -> JSONResponse:
    # A control call the state refused (the bodies' models catch most of these first).
    return JSONResponse({"detail": str(exc)}, status_code=400)


def create_sim_app(state: SimState | None = None) -> FastAPI:
    """The simulator as an ASGI app over `state` (a fresh one if none is given)."""
    state = state or SimState()
    app = FastAPI(
        title="WeChat API simulator",
        summary="A stand-in for api.weixin.qq.com with WeChat's semantics and error codes",
        docs_url="/sim/docs",
        openapi_url="/sim/openapi.json",
        redoc_url=None,
    )
    app.state.sim = state
    for endpoint, (path, method, handler) in WECHAT_ROUTES.items():
        app.add_api_route(
            path,
            _wechat_route(state, endpoint, method, handler),
            methods=_ALL_METHODS,
            name=endpoint,
            include_in_schema=False,
        )
    app.include_router(_control_router(state))

    app.add_exception_handler(ValueError, _bad_control_value)

    return app
