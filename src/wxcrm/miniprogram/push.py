"""`GET/POST /api/wechat/push`: the URL WeChat's message push (消息推送) is configured with."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse

from wxcrm.core.db import SessionDep
from wxcrm.core.errors import BadRequest, NotFound, Unauthorized
from wxcrm.miniprogram import push_service
from wxcrm.users.deps import SettingsDep

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/wechat", tags=["wechat"])

# WeChat retries a push whose answer is anything else.
ACKNOWLEDGED = "success"
# The echoed string is the caller's: browsers must not guess it is HTML.
PLAIN_HEADERS = {"X-Content-Type-Options": "nosniff"}


async def verified_push(
    settings: SettingsDep,
    signature: Annotated[str | None, Query(description="WeChat's signature")] = None,
    timestamp: Annotated[str | None, Query(description="Unix seconds")] = None,
    nonce: Annotated[str | None, Query()] = None,
) -> None:
    """Lets through only requests WeChat signed with WECHAT_PUSH_TOKEN in the last minutes."""
    token = settings.wechat_push_token.get_secret_value()
    if not token:
        raise NotFound("未配置微信消息推送（WECHAT_PUSH_TOKEN）")
    try:
        push_service.verify_push(token, signature, timestamp, nonce)
    except Unauthorized:
        log.warning("wechat push refused", reason="signature or timestamp")
        raise


# Declared before the session: a refused request never opens a transaction.
VerifiedPush = Depends(verified_push)


@router.get("/push", response_class=PlainTextResponse, dependencies=[VerifiedPush])
async def check_push_url(
    echostr: Annotated[str | None, Query(max_length=256)] = None,
) -> PlainTextResponse:
    """WeChat's URL check: echoes `echostr` when the signature is valid."""
    if not echostr:
        raise BadRequest("缺少echostr参数")
    return PlainTextResponse(echostr, headers=PLAIN_HEADERS)


@router.post("/push", response_class=PlainTextResponse, dependencies=[VerifiedPush])
async def receive_push(request: Request, session: SessionDep) -> PlainTextResponse:
    """A message or event WeChat pushes; subscription decisions update advisors' credits."""
    if request.query_params.get("encrypt_type", "raw") != "raw":
        # Safe mode (安全模式) bodies are encrypted; we are configured for plain text.
        log.warning("wechat push is encrypted: set the push to plain-text mode (明文模式)")
    message = push_service.parse_push(await request.body())
    applied = await push_service.apply_push(session, message)
    log.info(
        "wechat push",
        msg_type=message.msg_type,
        wechat_event=message.event,
        decisions=len(message.decisions),
        applied=applied,
    )
    return PlainTextResponse(ACKNOWLEDGED)
