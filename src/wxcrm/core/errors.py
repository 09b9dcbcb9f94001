"""One error base class, and the handlers that render every failure into the envelope.

Expected outcomes (bad input, no credentials, unknown ids) are 4xx AppErrors; anything
else is a bug: a 500 whose body says nothing of the internals, with the traceback logged.
"""

from __future__ import annotations

from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from wxcrm.core.envelope import ErrorEnvelope, error_response

log = structlog.get_logger(__name__)


class AppError(Exception):
    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "BAD_REQUEST"
    default_message: ClassVar[str] = "请求错误"

    def __init__(
        self,
        message: str | None = None,
        details: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.headers = headers
        super().__init__(self.message)


class BadRequest(AppError):
    status_code = 400
    code = "BAD_REQUEST"
    default_message = "请求参数错误"


class ValidationFailed(AppError):
    """Bad input found by our own rules; `details` lists `{field, message}`."""

    status_code = 400
    code = "VALIDATION_ERROR"
    default_message = "请求参数校验失败"

    @classmethod
    def on_field(cls, field: str, message: str) -> ValidationFailed:
        return cls(message, [{"field": field, "message": message}])


class Unauthorized(AppError):
    status_code = 401
    code = "UNAUTHORIZED"
    default_message = "未登录或登录已过期"

    def __init__(self, message: str | None = None, details: Any = None) -> None:
        super().__init__(message, details, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status_code = 403
    code = "FORBIDDEN"
    default_message = "没有权限执行此操作"


class NotFound(AppError):
    status_code = 404
    code = "NOT_FOUND"
    default_message = "资源不存在"


class Conflict(AppError):
    status_code = 409
    code = "CONFLICT"
    default_message = "数据冲突"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "请求体过大"


class RateLimited(AppError):
    status_code = 429
    code = "RATE_LIMITED"
    default_message = "请求过于频繁，请稍后再试"


class UpstreamWeChatError(AppError):
    """WeChat answered with an error on a call the request had to wait for."""

    status_code = 502
    code = "WECHAT_ERROR"
    default_message = "微信接口调用失败"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "服务暂不可用"


# Chinese wording for the pydantic error types a client meets; others keep pydantic's text.
_VALIDATION_MESSAGES = {
    "missing": "该字段为必填项",
    "json_invalid": "请求体不是合法的JSON",
    "json_type": "请求体必须是JSON对象",
    "model_attributes_type": "请求体必须是JSON对象",
    "dict_type": "必须是JSON对象",
    "string_type": "必须是字符串",
    "string_too_short": "长度不能少于{min_length}个字符",
    "string_too_long": "长度不能超过{max_length}个字符",
    "string_pattern_mismatch": "格式不正确",
    "int_type": "必须是整数",
    "int_parsing": "必须是整数",
    "float_type": "必须是数字",
    "float_parsing": "必须是数字",
    "bool_type": "必须是布尔值",
    "bool_parsing": "必须是布尔值",
    "list_type": "必须是数组",
    "too_short": "至少需要{min_length}项",
    "too_long": "最多{max_length}项",
    "greater_than_equal": "不能小于{ge}",
    "less_than_equal": "不能大于{le}",
    "greater_than": "必须大于{gt}",
    "less_than": "必须小于{lt}",
    "enum": "取值必须是 {expected} 之一",
    "literal_error": "取值必须是 {expected} 之一",
    "datetime_parsing": "不是合法的时间",
    "datetime_from_date_parsing": "不是合法的时间",
    "date_parsing": "不是合法的日期",
    "extra_forbidden": "不允许的字段",
}


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_details(errors: list[Any]) -> list[dict[str, str]]:
    details = []
    for error in errors:
        template = _VALIDATION_MESSAGES.get(error.get("type", ""))
        context = error.get("ctx") or {}
        if error.get("type") == "value_error" and "error" in context:
            message = str(context["error"])  # our own validators' words, without a prefix
        elif template is not None:
            try:
                message = template.format(**context)
            except (KeyError, IndexError):
                message = template
        else:
            message = str(error.get("msg", "参数不合法"))
        # A JSON syntax error's location is a character offset, not a field.
        loc = () if error.get("type") == "json_invalid" else tuple(error.get("loc", ()))
        details.append({"field": _field_name(loc), "message": message})
    return details


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc.status_code, exc.message, exc.code, exc.details, exc.headers)


async def _request_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = validation_details(list(exc.errors()))
    first = details[0] if details else None
    message = f"请求参数错误：{first['field']} {first['message']}" if first else "请求参数错误"
    return error_response(400, message, "VALIDATION_ERROR", details)


_HTTP_STATUS_ERRORS = {
    400: ("BAD_REQUEST", "请求错误"),
    401: ("UNAUTHORIZED", "未登录或登录已过期"),
    403: ("FORBIDDEN", "没有权限执行此操作"),
    404: ("NOT_FOUND", "接口不存在"),
    405: ("METHOD_NOT_ALLOWED", "请求方法不被允许"),
    413: ("PAYLOAD_TOO_LARGE", "请求体过大"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "不支持的请求类型"),
}


async def _http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, message = _HTTP_STATUS_ERRORS.get(exc.status_code, ("HTTP_ERROR", "请求错误"))
    return error_response(exc.status_code, message, code, None, dict(exc.headers or {}))


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Operational errors are the database's state (down, locked), not the client's fault.
    log.error("database unavailable", error_type=type(exc).__name__, path=request.url.path)
    return error_response(503, "数据库暂不可用，请稍后再试", "SERVICE_UNAVAILABLE")


async def _pool_exhausted(request: Request, exc: Exception) -> JSONResponse:
    # Every connection of this process is in use: answer at once and let the client retry,
    # rather than queue requests that would only time out later.
    log.warning("database pool exhausted", path=request.url.path)
    return error_response(
        503, "服务繁忙，请稍后再试", "SERVICE_UNAVAILABLE", headers={"Retry-After": "1"}
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", path=request.url.path, method=request.method, exc_info=exc)
    # This handler runs outside the request-id middleware, so it sets the header itself.
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    headers = {"x-request-id": request_id} if request_id else None
    return error_response(500, "服务器内部错误", "INTERNAL_ERROR", headers=headers)


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorEnvelope, "description": description, **extra}


def _retry_after(description: str) -> dict[str, Any]:
    return {"Retry-After": {"description": description, "schema": {"type": "integer"}}}


# The failures every route may answer, declared once for the app (OpenAPI only: the handlers
# above render them). "default" stands for the rest (405, 415, 500, 502) and keeps FastAPI
# from documenting a 422 this app never sends (bad input is a 400).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("请求参数错误（VALIDATION_ERROR：details 逐项列出 {field, message}）"),
    401: _error(
        "未登录、凭证无效或已过期（UNAUTHORIZED）",
        headers={"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    ),
    403: _error("没有权限（FORBIDDEN）"),
    404: _error("资源或接口不存在（NOT_FOUND）"),
    409: _error("数据冲突（CONFLICT）"),
    413: _error("请求体过大（PAYLOAD_TOO_LARGE）"),
    429: _error(
        "请求过于频繁（RATE_LIMITED）：details.retryAfter 秒后再试",
        headers=_retry_after("几秒后再试"),
    ),
    503: _error(
        "数据库或服务暂不可用（SERVICE_UNAVAILABLE）",
        headers=_retry_after("连接池已满时：几秒后再试"),
    ),
    "default": _error("其他失败（405、415、502 WECHAT_ERROR、500 INTERNAL_ERROR），同一信封"),
}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(ConnectionRefusedError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _pool_exhausted)
    app.add_exception_handler(Exception, _unexpected)
