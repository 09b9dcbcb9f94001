"""An async client for the simulator's `/sim/` control endpoints."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx

from wxcrm.wechat.sim.state import Endpoint, TokenFamily


class SimControl:
    """`async with SimControl(server.base_url) as control: await control.grant(...)`.

    Every method raises `httpx.HTTPStatusError` if the simulator refuses the request.
    """

    def __init__(
        self, base_url: str, *, http: httpx.AsyncClient | None = None, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        response = await self._http.request(
            method, f"{self.base_url}/sim/{path}", json=json, params=params
        )
        response.raise_for_status()
        return response.json()

    # -- codes -------------------------------------------------------------------------------

    async def mint_login_code(self, openid: str, *, unionid: str | None = None) -> str:
        body: dict[str, Any] = {"openid": openid, "unionid": unionid}
        answer = await self._call("POST", "login-codes", json=body)
        return str(answer["code"])

    async def mint_phone_code(self, phone: str) -> str:
        answer = await self._call("POST", "phone-codes", json={"phone": phone})
        return str(answer["code"])

    # -- subscriptions, templates, pages -----------------------------------------------------

    async def grant(self, openid: str, template_id: str, count: int = 1) -> int:
        """Add sends; returns the user's total for the template."""
        body = {"openid": openid, "template_id": template_id, "count": count}
        answer = await self._call("POST", "subscriptions", json=body)
        return int(answer["count"])

    async def subscriptions(self, openid: str | None = None) -> list[dict[str, Any]]:
        params = {"openid": openid} if openid is not None else None
        answer = await self._call("GET", "subscriptions", params=params)
        return list(answer["subscriptions"])

    async def register_template(self, template_id: str, *, long_term: bool = False) -> None:
        body = {"template_id": template_id, "long_term": long_term}
        await self._call("POST", "templates", json=body)

    async def register_page(self, page: str) -> None:
        await self._call("POST", "pages", json={"page": page})

    # -- what happened -----------------------------------------------------------------------

    async def messages(self, touser: str | None = None) -> list[dict[str, Any]]:
        params = {"touser": touser} if touser is not None else None
        answer = await self._call("GET", "messages", params=params)
        return list(answer["messages"])

    async def invocations(self) -> list[dict[str, Any]]:
        answer = await self._call("GET", "invocations")
        return list(answer["invocations"])

    async def stats(self) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call("GET", "stats")
        return answer

    # -- faults, tokens, clock, config -------------------------------------------------------

    async def fault(
        self,
        endpoint: Endpoint,
        *,
        count: int = 1,
        errcode: int | None = None,
        http_status: int | None = None,
        delay_ms: int | None = None,
        errmsg: str | None = None,
    ) -> None:
        """The next `count` calls of `endpoint` answer `errcode` or `http_status`, or wait
        `delay_ms` and then answer normally."""
        body: dict[str, Any] = {"endpoint": endpoint, "count": count}
        for key, value in (
            ("errcode", errcode),
            ("http_status", http_status),
            ("delay_ms", delay_ms),
            ("errmsg", errmsg),
        ):
            if value is not None:
                body[key] = value
        await self._call("POST", "faults", json=body)

    async def expire_tokens(self) -> int:
        answer = await self._call("POST", "tokens/expire")
        return int(answer["expired"])

    async def invalidate_token(self, family: TokenFamily | str = TokenFamily.stable) -> bool:
        answer = await self._call("POST", "tokens/invalidate", json={"family": str(family)})
        return bool(answer["invalidated"])

    async def now(self) -> float:
        answer = await self._call("GET", "clock")
        return float(answer["now"])

    async def advance_clock(self, seconds: float) -> float:
        """Move the simulator's clock forward; returns its new time (Unix seconds)."""
        answer = await self._call("POST", "clock", json={"advance_seconds": seconds})
        return float(answer["now"])

    async def configure(self, *, token_ttl_seconds: int | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call(
            "POST", "config", json={"token_ttl_seconds": token_ttl_seconds}
        )
        return answer

    async def reset(self) -> None:
        await self._call("POST", "reset")
