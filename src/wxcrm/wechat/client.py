"""The WeChat server API client: code2Session, stable tokens, subscribe messages, cloud
functions and phone numbers, over an injected `httpx.AsyncClient`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import structlog
from pydantic import SecretStr

from wxcrm.core.db import Database
from wxcrm.core.settings import Settings
from wxcrm.wechat.errors import NO_RETRY, ErrorKind, RetryPolicy, WeChatError
from wxcrm.wechat.tokens import IssuedToken, TokenStore

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=3.0)
MiniprogramState = Literal["developer", "trial", "formal"]


@dataclass(frozen=True)
class LoginSession:
    openid: str
    session_key: SecretStr  # decrypts the user's data; never leaves the server
    unionid: str | None


@dataclass(frozen=True)
class SentMessage:
    msgid: str


@dataclass(frozen=True)
class PhoneNumber:
    phone_number: str
    pure_phone_number: str
    country_code: str


@dataclass(frozen=True)
class _Call:
    """One HTTP request to WeChat and how it may be retried."""

    name: str
    method: str
    path: str
    params: Mapping[str, str]
    body: bytes | None = None
    # Whether a retry after a timeout is safe: sends are not (WeChat may have sent).
    idempotent: bool = True


class WeChatClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        database: Database,
        *,
        app_id: str,
        app_secret: SecretStr,
        base_url: str = "https://api.weixin.qq.com",
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self._http = http
        self._app_id = app_id
        self._app_secret = app_secret
        self._base_url = base_url.rstrip("/")
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
        self.tokens = TokenStore(database, app_id, self.fetch_stable_token)

    @classmethod
    def from_settings(
        cls, http: httpx.AsyncClient, database: Database, settings: Settings
    ) -> WeChatClient:
        return cls(
            http,
            database,
            app_id=settings.wechat_app_id,
            app_secret=settings.wechat_app_secret,
            base_url=settings.wechat_api_base,
        )

    # -- calls that need no access token -------------------------------------------------

    async def code2session(self, js_code: str) -> LoginSession:
        """Exchange a wx.login code. Never retried: a code works once, a retry would burn it."""
        call = _Call(
            "jscode2session",
            "GET",
            "/sns/jscode2session",
            {
                "appid": self._app_id,
                "secret": self._app_secret.get_secret_value(),
                "js_code": js_code,
                "grant_type": "authorization_code",
            },
            idempotent=False,
        )
        data = await self._send(call, NO_RETRY)
        return LoginSession(
            openid=str(data["openid"]),
            session_key=SecretStr(str(data.get("session_key", ""))),
            unionid=data.get("unionid"),
        )

    async def fetch_stable_token(self, force_refresh: bool = False) -> IssuedToken:
        """`POST /cgi-bin/stable_token`: in normal mode every caller gets the same token."""
        body = {
            "grant_type": "client_credential",
            "appid": self._app_id,
            "secret": self._app_secret.get_secret_value(),
            "force_refresh": force_refresh,
        }
        call = _Call("stable_token", "POST", "/cgi-bin/stable_token", {}, _json(body))
        data = await self._send(call, self._retry)
        return IssuedToken(str(data["access_token"]), int(data["expires_in"]))

    # -- calls made with the shared access token -----------------------------------------

    async def send_subscribe_message(
        self,
        *,
        touser: str,
        template_id: str,
        data: Mapping[str, Mapping[str, str]],
        page: str | None = None,
        miniprogram_state: MiniprogramState = "formal",
        lang: str = "zh_CN",
        retry: RetryPolicy | None = None,
    ) -> SentMessage:
        """Send a subscribe message; `miniprogram_state` and `lang` always go explicitly."""
        body: dict[str, Any] = {
            "touser": touser,
            "template_id": template_id,
            "data": data,
            "miniprogram_state": miniprogram_state,
            "lang": lang,
        }
        if page:
            body["page"] = page
        call = _Call(
            "subscribe_send",
            "POST",
            "/cgi-bin/message/subscribe/send",
            {},
            _json(body),
            idempotent=False,
        )
        result = await self._send_with_token(call, retry or self._retry)
        return SentMessage(msgid=str(result.get("msgid", "")))

    async def invoke_cloud_function(
        self,
        *,
        env: str,
        name: str,
        event: Mapping[str, Any] | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Run a cloud function over HTTP and return what it returned (`resp_data`, parsed)."""
        call = _Call(
            "invokecloudfunction",
            "POST",
            "/tcb/invokecloudfunction",
            {"env": env, "name": name},
            _json(dict(event or {})),  # WeChat refuses an empty body (44002): at least {}
            idempotent=False,
        )
        result = await self._send_with_token(call, retry or self._retry)
        resp_data = result.get("resp_data")
        if not isinstance(resp_data, str):
            return resp_data
        try:
            return json.loads(resp_data)
        except json.JSONDecodeError:
            return resp_data

    async def get_user_phone_number(self, code: str) -> PhoneNumber:
        """A phone number WeChat verified. Like a login code, the code works once: no retry."""
        call = _Call(
            "getuserphonenumber",
            "POST",
            "/wxa/business/getuserphonenumber",
            {},
            _json({"code": code}),
            idempotent=False,
        )
        result = await self._send_with_token(call, NO_RETRY)
        info = result.get("phone_info") or {}
        return PhoneNumber(
            phone_number=str(info.get("phoneNumber", "")),
            pure_phone_number=str(info.get("purePhoneNumber", "")),
            country_code=str(info.get("countryCode", "")),
        )

    # -- plumbing ---------------------------------------------------------------------------

    async def _send_with_token(self, call: _Call, retry: RetryPolicy) -> dict[str, Any]:
        token = await self.tokens.get()
        try:
            return await self._send(call, retry, token)
        except WeChatError as error:
            if error.kind is not ErrorKind.token:
                raise
            log.info("wechat token rejected", call=call.name, errcode=error.errcode)
        # Once, and only once: a second token error goes to the caller.
        token = await self.tokens.refresh_after_rejection(token)
        return await self._send(call, retry, token)

    async def _send(
        self, call: _Call, retry: RetryPolicy, token: str | None = None
    ) -> dict[str, Any]:
        failures = 0
        while True:
            try:
                return await self._send_once(call, token)
            except WeChatError as error:
                failures += 1
                retryable = error.kind is ErrorKind.transient and not error.maybe_delivered
                if not retryable or failures >= retry.attempts:
                    raise
                delay = retry.delay(failures)
                log.info(
                    "wechat call retried",
                    call=call.name,
                    errcode=error.errcode,
                    http_status=error.http_status,
                    attempt=failures,
                    delay_s=round(delay, 3),
                )
                await asyncio.sleep(delay)

    async def _send_once(self, call: _Call, token: str | None) -> dict[str, Any]:
        params = dict(call.params)
        if token is not None:
            params["access_token"] = token
        started = time.perf_counter()
        try:
            response = await self._http.request(
                call.method,
                self._base_url + call.path,
                params=params,
                content=call.body,
                headers={"content-type": "application/json"} if call.body is not None else None,
                timeout=self._timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached WeChat: always safe to try again.
            raise WeChatError(None, f"cannot reach WeChat ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            # The request may have been acted on; the message never includes the URL,
            # which carries the secret or the token.
            raise WeChatError(
                None,
                f"no answer from WeChat ({type(exc).__name__})",
                maybe_delivered=not call.idempotent,
            ) from None
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        if response.status_code >= 400:
            log.warning("wechat http error", call=call.name, status=response.status_code)
            raise WeChatError(
                None,
                f"WeChat answered HTTP {response.status_code}",
                http_status=response.status_code,
            )
        try:
            data = json.loads(response.content)
        except ValueError:
            raise WeChatError(None, "WeChat answered something that is not JSON") from None
        if not isinstance(data, dict):
            raise WeChatError(None, "WeChat answered something that is not a JSON object")
        errcode = data.get("errcode")
        # A missing errcode is a success (code2Session no longer sends errcode 0).
        if errcode not in (None, 0):
            log.info("wechat error", call=call.name, errcode=errcode, ms=elapsed_ms)
            raise WeChatError(int(errcode), str(data.get("errmsg", "")))
        log.debug("wechat call", call=call.name, ms=elapsed_ms)
        return data


def _json(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
