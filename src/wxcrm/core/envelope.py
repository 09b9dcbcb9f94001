"""The response envelope every JSON answer shares (SPEC §3)."""

from __future__ import annotations

import time
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse


def now_ms() -> int:
    return int(time.time() * 1000)


def envelope(data: Any = None, message: str = "操作成功") -> dict[str, Any]:
    """A success body: `{success, data, message, timestamp}`."""
    return {"success": True, "data": data, "message": message, "timestamp": now_ms()}


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
