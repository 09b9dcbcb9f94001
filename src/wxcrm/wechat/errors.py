"""WeChat's error codes and what we do about each: one table, not `if`s spread over the code.

WeChatError
  kind = token      40001 / 40014 / 42001: get a fresh token and retry the call once
  kind = transient  -1, HTTP 5xx, timeouts, quota: back off, try again a bounded number of times
  kind = permanent  everything else: the call cannot succeed as it is; keep the errcode
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

import structlog

from wxcrm.core.errors import AppError, BadRequest, UpstreamWeChatError

log = structlog.get_logger(__name__)


class ErrorKind(StrEnum):
    token = "token"
    transient = "transient"
    permanent = "permanent"


ERRCODE_KINDS: dict[int, ErrorKind] = {
    # The access token was superseded, is unknown, or has expired.
    40001: ErrorKind.token,
    40014: ErrorKind.token,
    42001: ErrorKind.token,
    # WeChat is busy, or a quota is spent until the next minute or day.
    -1: ErrorKind.transient,
    -1000: ErrorKind.transient,
    45009: ErrorKind.transient,
    45011: ErrorKind.transient,
    # Everything the caller must fix; listed for the reader, the default says the same.
    40003: ErrorKind.permanent,  # invalid openid
    40037: ErrorKind.permanent,  # invalid template_id
    41030: ErrorKind.permanent,  # invalid page
    43101: ErrorKind.permanent,  # the user has no subscription left
    47003: ErrorKind.permanent,  # a data value breaks its keyword type's rule
    40029: ErrorKind.permanent,  # invalid or expired login code
    40163: ErrorKind.permanent,  # login code already used
    40125: ErrorKind.permanent,  # wrong app secret
    44002: ErrorKind.permanent,  # empty body to a cloud function
}


def kind_of(errcode: int | None, http_status: int | None = None) -> ErrorKind:
    if errcode is not None:
        return ERRCODE_KINDS.get(errcode, ErrorKind.permanent)
    if http_status is not None and http_status < 500 and http_status != 429:
        return ErrorKind.permanent
    return ErrorKind.transient  # 5xx, 429, timeouts, broken connections


class WeChatError(Exception):
    """WeChat refused a call, or could not be reached. Never carries a secret or a token."""

    def __init__(
        self,
        errcode: int | None,
        errmsg: str,
        *,
        http_status: int | None = None,
        maybe_delivered: bool = False,
    ) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.http_status = http_status
        # A timeout after the request was sent: WeChat may have acted on it.
        self.maybe_delivered = maybe_delivered
        code = errcode if errcode is not None else http_status
        super().__init__(f"WeChat error {code}: {errmsg}")

    @property
    def kind(self) -> ErrorKind:
        return kind_of(self.errcode, self.http_status)


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: `attempts` tries in all, exponential backoff
    from `base_delay` up to `max_delay`, half of each wait random so callers spread out."""

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, failed_attempts: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (failed_attempts - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


NO_RETRY = RetryPolicy(attempts=1)


# WeChat errcodes that mean the code the client sent is no good: the client's fault (400).
BAD_CODE_ERRCODES = {40029, 40163, 40226}


def wechat_failure(error: WeChatError, bad_code_message: str) -> AppError:
    """What a WeChat error on a call the request waited for becomes for the client."""
    if error.errcode in BAD_CODE_ERRCODES:
        return BadRequest(bad_code_message, {"errcode": error.errcode})
    message = (
        "微信服务暂不可用，请稍后再试" if error.kind is ErrorKind.transient else "微信接口调用失败"
    )
    # WeChat's own errmsg (request ids, internal wording) stays in our log: these callers
    # are not yet authenticated.
    log.warning("wechat call failed", errcode=error.errcode, errmsg=error.errmsg)
    return UpstreamWeChatError(message, {"errcode": error.errcode})
