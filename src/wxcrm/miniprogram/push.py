"""`GET/POST /api/wechat/push`: the URL WeChat's message push (消息推送) is configured with."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response

from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.errors import NotFound, ServiceUnavailable, Unauthorized
from wxcrm.miniprogram import push_service
from wxcrm.miniprogram.push_crypto import InvalidEncodingAESKey, PushCipher
from wxcrm.miniprogram.push_service import PushKeys, PushQuery, VerifiedPush

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/wechat", tags=["wechat"])

# WeChat retries a push whose answer is anything else.
ACKNOWLEDGED = "success"
# The echoed string is the caller's: browsers must not guess it is HTML.


def _plain_text(description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 in OpenAPI. Declared here, not by `response_class=PlainTextResponse`:
    FastAPI would then put the failures' JSON envelope under text/plain too."""
    return {
        200: {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}
    }


async def push_keys(settings: SettingsDep) -> PushKeys:
    """The push's Token, and its EncodingAESKey when safe mode (安全模式) is configured."""
    token = settings.wechat_push_token.get_secret_value()
    if not token:
        raise NotFound("未配置微信消息推送（WECHAT_PUSH_TOKEN）")
    aes_key = settings.wechat_push_aes_key.get_secret_value()
    if not aes_key:
        return PushKeys(token)
    try:
        return PushKeys(token, PushCipher(aes_key.strip(), settings.wechat_app_id))
    except InvalidEncodingAESKey as exc:
        # The reason names the rule broken, never the key.
        log.error("WECHAT_PUSH_AES_KEY is not an EncodingAESKey", reason=str(exc))
        raise ServiceUnavailable(
            "微信消息推送的EncodingAESKey（WECHAT_PUSH_AES_KEY）配置无效"
        ) from None


async def push_query(
    signature: Annotated[str | None, Query(description="WeChat's signature")] = None,
    timestamp: Annotated[str | None, Query(description="Unix seconds")] = None,
    nonce: Annotated[str | None, Query()] = None,
    msg_signature: Annotated[
        str | None, Query(description="Safe mode: the signature that covers the ciphertext too")
    ] = None,
    encrypt_type: Annotated[str | None, Query(description="`aes` in safe mode")] = None,
) -> PushQuery:
    return PushQuery(signature, timestamp, nonce, msg_signature, encrypt_type)


PushKeysDep = Annotated[PushKeys, Depends(push_keys)]
PushQueryDep = Annotated[PushQuery, Depends(push_query)]


async def verified_push(request: Request, keys: PushKeysDep, query: PushQueryDep) -> VerifiedPush:
    """Lets through only requests WeChat signed with WECHAT_PUSH_TOKEN in the last minutes,
    with their body decrypted in safe mode."""
    try:
        return push_service.open_push(keys, query, await request.body())
    except Unauthorized as exc:
        log.warning("wechat push refused", reason=exc.message)
        raise


# Routes take it before the session: a refused request never opens a transaction.
VerifiedPushDep = Annotated[VerifiedPush, Depends(verified_push)]


@router.get("/push", response_class=Response, responses=_plain_text("`echostr`，原样或解密后"))
async def check_push_url(
    keys: PushKeysDep,
    query: PushQueryDep,
    echostr: Annotated[str | None, Query(max_length=256)] = None,
) -> PlainTextResponse:
    """WeChat's URL check: answers `echostr` (decrypted in safe mode) if the signature is valid."""
    try:
        answer = push_service.answer_url_check(keys, query, echostr)
    except Unauthorized as exc:
        log.warning("wechat push url check refused", reason=exc.message)
        raise
    return PlainTextResponse(answer)


@router.post("/push", response_class=Response, responses=_plain_text("`success`：已收到"))
async def receive_push(push: VerifiedPushDep, session: SessionDep) -> PlainTextResponse:
    """A message or event WeChat pushes; subscription decisions update advisors' credits."""
    message, applied = await push_service.receive_push(session, push)
    log.info(
        "wechat push",
        msg_type=message.msg_type,
        wechat_event=message.event,
        decisions=len(message.decisions),
        applied=applied,
        encrypted=push.encrypted,
    )
    return PlainTextResponse(ACKNOWLEDGED)
