"""Structured logging: one line per event, with the request id bound, never a secret."""

from __future__ import annotations

import hashlib
import logging
import sys
from typing import Any

import structlog

# Keys whose values are secrets: redacted wherever they appear in an event.
_SECRET_KEYS = frozenset(
    {
        "password",
        "secret",
        "app_secret",
        "secret_key",
        "session_key",
        "access_token",
        "token",
        "authorization",
    }
)


def _redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in event_dict.keys() & _SECRET_KEYS:
        event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(
    level: str = "INFO", fmt: str = "json", *, cache_loggers: bool = True
) -> None:
    """Route structlog and the standard library through one renderer.

    Loggers are fixed at their first use (a few microseconds a line saved), after which no
    later configuration reaches them: `cache_loggers=False` where one will follow (tests).
    """
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # filter_by_level first: a disabled debug line costs a level check, not a timestamp.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=cache_loggers,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own request log replaces uvicorn's access log, which lacks the request id.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # httpx logs every URL at INFO, and WeChat's URLs carry the app secret and the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # SQLAlchemy's pool would say at INFO each time an engine is disposed: nothing to act on.
    logging.getLogger("wxcrm.core.db.FairQueuePool").setLevel(logging.WARNING)
    # aiosqlite logs every statement's parameters at DEBUG, tokens included.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)


def openid_hash(openid: str) -> str:
    """How logs name a WeChat user: a hash of the openid, enough to follow one user's
    requests, without writing their identifier down."""
    return hashlib.sha256(openid.encode()).hexdigest()[:16]


def identify_caller(*, staff_id: str | None = None, openid: str | None = None) -> None:
    """Name the caller on every later line of this request, its access line included: the
    staff member's id, or the mini-program user's openid hash."""
    if staff_id is not None:
        structlog.contextvars.bind_contextvars(staff_id=staff_id)
    if openid is not None:
        structlog.contextvars.bind_contextvars(openid_hash=openid_hash(openid))
