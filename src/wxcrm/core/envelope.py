"""The response envelope every JSON answer shares (README), as models and as helpers.

Routes return `Envelope[T]` instances and declare them as their response model (the return
annotation): /openapi.json then describes `data`, and FastAPI serializes the instance straight
to JSON bytes (pydantic-core). Build it parametrized, `Envelope[ItemOut](data=..., ...)`: an
instance of the declared class passes FastAPI's response validation as it is, where a bare
`Envelope(...)` is validated again, field by field. Failures are rendered by the error
handlers with `error_response`; `ErrorEnvelope` only describes them to OpenAPI.
"""

from __future__ import annotations

import time
from typing import Any, Generic, Literal, TypeVar

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

# Fields with defaults are still in every answer: required in the schema of a response.
_ANSWER = ConfigDict(json_schema_serialization_defaults_required=True)


def now_ms() -> int:
    return int(time.time() * 1000)


class Envelope(BaseModel, Generic[T]):
    """A success: `{success, data, message, timestamp}`."""

    model_config = _ANSWER

    success: Literal[True] = True
    data: T
    message: str = Field("操作成功", description="给用户看的中文说明")
    timestamp: int = Field(default_factory=now_ms, description="服务器时间，Unix 毫秒")


class FieldProblem(BaseModel):
    """One problem of bad input. The customer import adds `row`, `column` and `value`."""

    model_config = ConfigDict(extra="allow")

    field: str = Field(description="出错的字段（点号连接的路径），或 body")
    message: str = Field(description="中文说明")
    row: int | None = Field(None, description="导入：表格中的行号")
    column: str | None = Field(None, description="导入：列名")
    value: str | None = Field(None, description="导入：单元格的值（截短）")


class ErrorInfo(BaseModel):
    model_config = _ANSWER

    code: str = Field(description="机器可读的错误码，如 VALIDATION_ERROR、NOT_FOUND、RATE_LIMITED")
    details: list[FieldProblem] | dict[str, Any] | None = Field(
        None,
        description="VALIDATION_ERROR：逐项 {field, message}；RATE_LIMITED：{retryAfter}（秒）",
    )


class ErrorEnvelope(BaseModel):
    """A failure: `{success: false, data: null, message, error: {code, details}, timestamp}`."""

    model_config = _ANSWER

    success: Literal[False] = False
    data: None = None
    message: str = Field(description="给用户看的中文说明")
    error: ErrorInfo
    timestamp: int = Field(description="服务器时间，Unix 毫秒")


def error_body(message: str, code: str, details: Any = None) -> dict[str, Any]:
    return {
        "success": False,
        "data": None,
        "message": message,
        "error": {"code": code, "details": details},
        "timestamp": now_ms(),
    }


def error_response(
    status_code: int,
    message: str,
    code: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        jsonable_encoder(error_body(message, code, details)),
        status_code=status_code,
        headers=headers,
    )
