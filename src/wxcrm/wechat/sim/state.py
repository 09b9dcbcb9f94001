"""The simulator's world, in memory: login and phone codes, the two token families,
subscription credits, what was sent and invoked, queued faults and call counts.

Every method that changes state runs without awaiting in between, so one event loop keeps
it consistent without locks. Times come from `now()`, the wall clock plus an offset that
tests move forward instead of sleeping.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Literal, get_args

from wxcrm.core.clock import business_day  # WeChat's daily quotas follow China's days
from wxcrm.wechat.sim.rules import first_invalid_key

DEFAULT_APP_ID = "wx0000000000000000"
DEFAULT_APP_SECRET = "sim-app-secret"
DEFAULT_TOKEN_TTL = 7200
CODE_TTL = 300  # login and phone codes live five minutes
TOKEN_OVERLAP = 300  # a superseded /cgi-bin/token lives 5 more minutes; stable refreshes at ≤5 left
FORCE_REFRESH_SPACING = 30
FORCE_REFRESH_PER_DAY = 20

Endpoint = Literal[
    "jscode2session",
    "token",
    "stable_token",
    "subscribe_send",
    "invokecloudfunction",
    "getuserphonenumber",
]
ENDPOINTS: tuple[Endpoint, ...] = get_args(Endpoint)

MINIPROGRAM_STATES = frozenset({"developer", "trial", "formal"})
LANGS = frozenset({"zh_CN", "en_US", "zh_HK", "zh_TW"})

ERRMSGS: dict[int, str] = {
    -1: "system error",
    -501007: "invalid request param",
    -504002: "functions execute fail",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40014: "invalid access_token",
    40029: "invalid code",
    40037: "invalid template_id",
    40101: "missing parameter",
    40125: "invalid appsecret",
    40163: "code been used",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    41030: "invalid page",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    43101: "user refuse to accept the msg",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit mustslower retry next minute",
    47001: "data format error",
}


class SimError(Exception):
    """A WeChat error answer: HTTP 200 with `{"errcode", "errmsg"}`."""

    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg or ERRMSGS.get(errcode, "simulated error")
        super().__init__(f"{self.errcode} {self.errmsg}")


class TokenFamily(StrEnum):
    """The two kinds of access token; WeChat keeps them fully apart."""

    stable = "stable_token"
    token = "token"


@dataclass
class Token:
    value: str
    family: TokenFamily
    issued_at: float
    expires_at: float
    invalid_at: float | None = None  # superseded or invalidated: 40001 from then on

    def error_at(self, now: float) -> int | None:
        """The errcode a call with this token gets at `now`, or None if it is good."""
        invalid = self.invalid_at is not None and now >= self.invalid_at
        expired = now >= self.expires_at
        if invalid and expired:  # whichever ended it first
            assert self.invalid_at is not None
            return 40001 if self.invalid_at <= self.expires_at else 42001
        if invalid:
            return 40001
        if expired:
            return 42001
        return None


@dataclass
class Code:
    """A login code (for an openid) or a phone code (for a number)."""

    code: str
    subject: str
    minted_at: float
    used: bool = False


@dataclass
class Fault:
    endpoint: Endpoint
    remaining: int
    errcode: int | None = None
    http_status: int | None = None
    delay_ms: int | None = None
    errmsg: str | None = None


@dataclass
class SentMessage:
    touser: str
    template_id: str
    page: str | None
    data: dict[str, Any]
    miniprogram_state: str | None
    lang: str | None
    msgid: int
    time: float


@dataclass
class Invocation:
    env: str
    name: str
    event: dict[str, Any]
    time: float


CloudFunction = Callable[[dict[str, Any]], dict[str, Any] | Awaitable[dict[str, Any]]]


def quickstart_functions(event: dict[str, Any]) -> dict[str, Any]:
    """The default `quickstartFunctions`: answers as the deployed function does, sends nothing."""
    kind = event.get("type")
    if kind != "sendCustomerAssignNotify":
        return {"success": False, "error": f"未知的操作类型: {kind}"}
    data = event.get("notificationData")
    if not isinstance(data, dict):
        return {"success": False, "error": "缺少通知数据 notificationData"}
    openid, advisor_id = data.get("assignedToOpenid"), data.get("assignedToId")
    if not openid and not advisor_id:
        return {"success": False, "error": "缺少被分配人 assignedToOpenid 或 assignedToId"}
    return {
        "success": True,
        "message": "分配通知已发送",
        "assignedToOpenid": openid,
        "assignedToId": advisor_id,
    }


def _new_token() -> str:
    # Real tokens are opaque and long (WeChat asks for 512 characters of room).
    return secrets.token_urlsafe(96)


def _new_code() -> str:
    return secrets.token_hex(16)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _page_path(page: str) -> str:
    return page.split("?", 1)[0].lstrip("/")


class SimState:
    """Everything the simulator knows. `reset()` returns it to how it was created."""

    def __init__(
        self,
        *,
        app_id: str = DEFAULT_APP_ID,
        app_secret: str = DEFAULT_APP_SECRET,
        any_app_id: bool = False,
        token_ttl_seconds: int = DEFAULT_TOKEN_TTL,
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        # Test suites that give every test its own app id accept any id (the secret still counts).
        self.any_app_id = any_app_id
        self._initial_token_ttl = token_ttl_seconds
        self.reset()

    def reset(self) -> None:
        self.token_ttl_seconds = self._initial_token_ttl
        self.clock_offset = 0.0
        self.login_codes: dict[str, Code] = {}
        self.phone_codes: dict[str, Code] = {}
        self.session_keys: dict[str, str] = {}
        self.unionids: dict[str, str] = {}
        self.tokens: dict[str, Token] = {}
        self.current_tokens: dict[TokenFamily, Token] = {}
        self.last_force_refresh_at: float | None = None
        self.force_refreshes: dict[date, int] = {}
        self.credits: dict[tuple[str, str], int] = {}
        self.templates: dict[str, bool] = {}  # template id → long-term
        self.pages: set[str] = set()
        self.messages: list[SentMessage] = []
        self.invocations: list[Invocation] = []
        self.functions: dict[str, CloudFunction] = {"quickstartFunctions": quickstart_functions}
        self.faults: list[Fault] = []
        self.calls: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self.token_fetches: dict[str, int] = {family.value: 0 for family in TokenFamily}
        self.tokens_issued = 0
        self._last_msgid = 1_000_000_000

    # -- the clock ---------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.clock_offset += seconds
        return self.now()

    # -- control -----------------------------------------------------------------------------

    def mint_login_code(self, openid: str, unionid: str | None = None) -> str:
        if unionid:
            self.unionids[openid] = unionid
        code = _new_code()
        self.login_codes[code] = Code(code, openid, self.now())
        return code

    def mint_phone_code(self, phone: str) -> str:
        code = _new_code()
        self.phone_codes[code] = Code(code, phone, self.now())
        return code

    def grant(self, openid: str, template_id: str, count: int = 1) -> int:
        """Add `count` sends for this user and template, as `count` accepts would."""
        key = (openid, template_id)
        self.credits[key] = self.credits.get(key, 0) + count
        return self.credits[key]

    def subscriptions(self, openid: str | None = None) -> list[dict[str, Any]]:
        return [
            {"openid": user, "template_id": template, "count": count}
            for (user, template), count in self.credits.items()
            if openid is None or user == openid
        ]

    def register_template(self, template_id: str, long_term: bool = False) -> None:
        """Once any template is registered, sends to other template ids get 40037."""
        self.templates[template_id] = long_term

    def register_page(self, page: str) -> None:
        """Once any page is registered, sends opening other pages get 41030."""
        self.pages.add(_page_path(page))

    def register_function(self, name: str, function: CloudFunction) -> None:
        self.functions[name] = function

    def add_fault(
        self,
        endpoint: Endpoint,
        count: int = 1,
        *,
        errcode: int | None = None,
        http_status: int | None = None,
        delay_ms: int | None = None,
        errmsg: str | None = None,
    ) -> Fault:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if errcode is None and http_status is None and delay_ms is None:
            raise ValueError("a fault needs an errcode, an http_status or a delay_ms")
        if errcode is not None and http_status is not None:
            raise ValueError("a fault answers either an errcode or an http_status")
        fault = Fault(endpoint, count, errcode, http_status, delay_ms, errmsg)
        self.faults.append(fault)
        return fault

    def expire_tokens(self) -> int:
        """Every token still good expires now: calls with it get 42001."""
        now = self.now()
        live = [token for token in self.tokens.values() if token.error_at(now) is None]
        for token in live:
            token.expires_at = now
        return len(live)

    def invalidate_token(self, family: TokenFamily = TokenFamily.stable) -> bool:
        """The current token of `family` gets 40001 from now; stable_token then issues anew."""
        token = self.current_tokens.get(family)
        now = self.now()
        if token is None or token.error_at(now) is not None:
            return False
        token.invalid_at = now
        return True

    def configure(self, *, token_ttl_seconds: int | None = None) -> None:
        if token_ttl_seconds is not None:
            if token_ttl_seconds < 1:
                raise ValueError("token_ttl_seconds must be at least 1")
            self.token_ttl_seconds = token_ttl_seconds

    def stats(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "token_fetches": dict(self.token_fetches),
            "tokens_issued": self.tokens_issued,
        }

    def begin_call(self, endpoint: Endpoint) -> Fault | None:
        """Count a call and take the first fault queued for its endpoint, if any."""
        self.calls[endpoint] += 1
        for fault in self.faults:
            if fault.endpoint == endpoint:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    # -- credentials -------------------------------------------------------------------------

    def _check_app(self, appid: str | None, secret: str | None) -> None:
        if not appid:
            raise SimError(41002)
        if not secret:
            raise SimError(41004)
        if appid != self.app_id and not self.any_app_id:
            raise SimError(40013)
        if secret != self.app_secret:
            raise SimError(40125)

    def _issue(self, family: TokenFamily) -> Token:
        now = self.now()
        token = Token(_new_token(), family, now, now + self.token_ttl_seconds)
        self.tokens[token.value] = token
        self.current_tokens[family] = token
        self.tokens_issued += 1
        return token

    def check_token(self, value: str | None) -> Token:
        """The token a call carries, or the errcode WeChat answers for it."""
        if not value:
            raise SimError(41001)
        token = self.tokens.get(value)
        if token is None:
            raise SimError(40014)
        errcode = token.error_at(self.now())
        if errcode is not None:
            raise SimError(errcode)
        return token

    # -- WeChat's endpoints ------------------------------------------------------------------

    def code2session(
        self, appid: str | None, secret: str | None, js_code: str | None, grant_type: str | None
    ) -> dict[str, Any]:
        self._check_app(appid, secret)
        if grant_type != "authorization_code":
            raise SimError(40002)
        if not js_code:
            raise SimError(41008)
        code = self.login_codes.get(js_code)
        if code is None or self.now() >= code.minted_at + CODE_TTL:
            raise SimError(40029)
        if code.used:
            raise SimError(40163)
        code.used = True
        openid = code.subject
        session_key = self.session_keys.setdefault(
            openid, base64.b64encode(os.urandom(16)).decode()
        )
        answer = {"openid": openid, "session_key": session_key}
        if openid in self.unionids:
            answer["unionid"] = self.unionids[openid]
        return answer

    def client_credential_token(
        self, appid: str | None, secret: str | None, grant_type: str | None
    ) -> dict[str, Any]:
        """`/cgi-bin/token`: a new token on every call; the previous one lives 300 s more."""
        self._check_app(appid, secret)
        if grant_type != "client_credential":
            raise SimError(40002)
        previous = self.current_tokens.get(TokenFamily.token)
        now = self.now()
        if previous is not None:
            overlap_end = now + TOKEN_OVERLAP
            if previous.invalid_at is None or previous.invalid_at > overlap_end:
                previous.invalid_at = overlap_end
        token = self._issue(TokenFamily.token)
        self.token_fetches[TokenFamily.token] += 1
        return {"access_token": token.value, "expires_in": self.token_ttl_seconds}

    def stable_token(self, body: object) -> dict[str, Any]:
        """`/cgi-bin/stable_token`: the same token while more than 300 s remain."""
        if not isinstance(body, dict):
            raise SimError(47001)
        self._check_app(_text(body.get("appid")), _text(body.get("secret")))
        if body.get("grant_type") != "client_credential":
            raise SimError(40002)
        now = self.now()
        current = self.current_tokens.get(TokenFamily.stable)
        if body.get("force_refresh") is True and not self._force_refresh_too_soon(now):
            day = business_day(datetime.fromtimestamp(now, UTC))
            if self.force_refreshes.get(day, 0) >= FORCE_REFRESH_PER_DAY:
                raise SimError(45009)
            self.force_refreshes[day] = self.force_refreshes.get(day, 0) + 1
            self.last_force_refresh_at = now
            if current is not None and current.error_at(now) is None:
                current.invalid_at = now
            token = self._issue(TokenFamily.stable)
        elif (
            current is not None
            and current.error_at(now) is None
            and current.expires_at - now > TOKEN_OVERLAP
        ):
            token = current
        else:
            token = self._issue(TokenFamily.stable)  # the old one lives out its own life
        self.token_fetches[TokenFamily.stable] += 1
        return {"access_token": token.value, "expires_in": int(token.expires_at - now)}

    def _force_refresh_too_soon(self, now: float) -> bool:
        # Inside 30 s of the last forced refresh WeChat "does not refresh": a normal call.
        last = self.last_force_refresh_at
        return last is not None and now - last < FORCE_REFRESH_SPACING

    def send_subscribe(self, access_token: str | None, body: object) -> dict[str, Any]:
        self.check_token(access_token)
        if not isinstance(body, dict):
            raise SimError(47001)
        touser = _text(body.get("touser"))
        if touser is None:
            raise SimError(40003)
        template_id = _text(body.get("template_id"))
        if template_id is None or (self.templates and template_id not in self.templates):
            raise SimError(40037)
        data = body.get("data")
        if not isinstance(data, dict) or not data:
            raise SimError(47003, "argument invalid! data invalid")
        bad_key = first_invalid_key(data)
        if bad_key is not None:
            raise SimError(47003, f"argument invalid! data.{bad_key}.value invalid")
        page = body.get("page")
        if page is not None and page != "":
            if not isinstance(page, str) or (self.pages and _page_path(page) not in self.pages):
                raise SimError(41030)
        state, lang = body.get("miniprogram_state"), body.get("lang")
        if state is not None and state not in MINIPROGRAM_STATES:
            raise SimError(47003, "argument invalid! miniprogram_state invalid")
        if lang is not None and lang not in LANGS:
            raise SimError(47003, "argument invalid! lang invalid")
        key = (touser, template_id)
        if self.credits.get(key, 0) < 1:
            raise SimError(43101)
        if not self.templates.get(template_id, False):  # long-term templates keep their grant
            self.credits[key] -= 1
        self._last_msgid += 1
        self.messages.append(
            SentMessage(
                touser=touser,
                template_id=template_id,
                page=page or None,
                data=data,
                miniprogram_state=state,
                lang=lang,
                msgid=self._last_msgid,
                time=self.now(),
            )
        )
        return {"errcode": 0, "errmsg": "ok", "msgid": self._last_msgid}

    async def invoke_cloud_function(
        self, access_token: str | None, env: str | None, name: str | None, raw: bytes
    ) -> dict[str, Any]:
        self.check_token(access_token)
        if not env or not name:
            raise SimError(40101)
        if not raw.strip():
            raise SimError(44002)
        try:
            event = json.loads(raw)
        except ValueError as exc:
            raise SimError(-501007) from exc
        if not isinstance(event, dict):
            raise SimError(-501007)
        function = self.functions.get(name)
        if function is None:
            raise SimError(-504002, f"functions execute fail, function {name} not found")
        self.invocations.append(Invocation(env, name, event, self.now()))
        # The only await in the simulator's state changes: nothing is changed after it.
        try:
            result = function(event)
            if inspect.isawaitable(result):
                result = await result
            resp_data = json.dumps(result, ensure_ascii=False)
        except Exception as exc:
            raise SimError(-504002, f"functions execute fail, {type(exc).__name__}: {exc}") from exc
        return {"errcode": 0, "errmsg": "ok", "resp_data": resp_data}

    def phone_number(self, access_token: str | None, body: object) -> dict[str, Any]:
        self.check_token(access_token)
        if not isinstance(body, dict):
            raise SimError(47001)
        value = _text(body.get("code"))
        if value is None:
            raise SimError(41008)
        code = self.phone_codes.get(value)
        now = self.now()
        if code is None or code.used or now >= code.minted_at + CODE_TTL:
            raise SimError(40029)
        code.used = True
        return {
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": code.subject,
                "purePhoneNumber": code.subject,
                "countryCode": "86",
                "watermark": {"timestamp": int(now), "appid": self.app_id},
            },
        }


def as_dict(record: SentMessage | Invocation | Fault) -> dict[str, Any]:
    return asdict(record)
