"""Health checks for load balancers and operators."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from wxcrm.core.db import DatabaseDep
from wxcrm.core.envelope import envelope, error_response

router = APIRouter(prefix="/api/health", tags=["health"])

DATABASE_CHECK_TIMEOUT_S = 3.0


@router.get("")
async def health(database: DatabaseDep) -> Any:
    """Whether the service can reach its database (503 when it cannot)."""
    try:
        async with asyncio.timeout(DATABASE_CHECK_TIMEOUT_S):
            async with database.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database is "down", whatever its type
        return error_response(
            503,
            "数据库不可用",
            "SERVICE_UNAVAILABLE",
            {"database": "down", "error": type(exc).__name__},
        )
    return envelope({"status": "ok", "database": "ok"}, "服务正常")


@router.get("/live")
async def live() -> JSONResponse:
    """The process answers; touches nothing else."""
    return JSONResponse(envelope({"status": "ok"}, "服务正常"))
