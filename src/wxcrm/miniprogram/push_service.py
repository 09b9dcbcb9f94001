"""WeChat's message push (消息推送): signatures, safe mode, replays, parsing, subscription events.

WeChat tells us here what advisors answered to subscription prompts, so the
credit ledger follows WeChat rather than the client's report of it.

In plain-text mode (明文模式) WeChat signs the timestamp and nonce but not the body, so a
captured URL would carry any body. In safe mode (安全模式) the signature covers the
encrypted body as well, and the body opens only with our EncodingAESKey; a captured
request could still be sent again. So in both modes each (timestamp, nonce) is accepted
once, recorded in the database so that every process sees it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import structlog
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.db import insert_ignoring_conflicts
from wxcrm.core.errors import BadRequest, Unauthorized
from wxcrm.miniprogram.models import WeChatPushEvent, WeChatPushNonce
from wxcrm.miniprogram.push_crypto import PushCipher, UndecryptablePush
from wxcrm.notifications.subscriptions import record_decision
from wxcrm.users.models import Role
from wxcrm.users.repository import UserRepository

log = structlog.get_logger(__name__)

# A signed push older or newer than this is refused: a captured request cannot be replayed later.
MAX_CLOCK_SKEW_SECONDS = 10 * 60
# Accepted nonces are kept until the window refuses their timestamp anyway; twice the window,
# so that a process whose clock is behind another's still finds the rows it needs.
NONCE_RETENTION_SECONDS = 2 * MAX_CLOCK_SKEW_SECONDS

POPUP_EVENT = "subscribe_msg_popup_event"
CHANGE_EVENT = "subscribe_msg_change_event"
# The element (XML) or key (JSON) that holds an event's decisions.
SUBSCRIPTION_WRAPPERS = {
    POPUP_EVENT: "SubscribeMsgPopupEvent",
    CHANGE_EVENT: "SubscribeMsgChangeEvent",
}

# Column widths of the rows a decision ends in (users.openid, advisor_subscriptions.template_id).
MAX_OPENID = 64
MAX_TEMPLATE_ID = 128
MAX_DEDUPE_KEY = 200
# Column width of wechat_push_nonces.nonce; WeChat's nonces are ten digits or so.
MAX_NONCE = 64

_TIMESTAMP = re.compile(r"[0-9]{1,10}")

BAD_SIGNATURE = "微信消息推送签名无效"
STALE_TIMESTAMP = "微信消息推送时间戳无效或已过期"
REPLAYED = "微信消息推送已处理过（时间戳与随机数重复）"
NOT_ENCRYPTED = "已配置安全模式（WECHAT_PUSH_AES_KEY），不接受未加密的微信消息推送"
NO_ECHOSTR = "缺少echostr参数"
MALFORMED = "微信消息推送内容格式错误"
NO_LIST = "订阅事件缺少模板列表（List）"


class MalformedPush(BadRequest):
    default_message = MALFORMED


# -- signature and safe mode ----------------------------------------------------------------


def push_signature(token: str, timestamp: str, nonce: str, *signed: str) -> str:
    """WeChat's signature: sha1 of the token, timestamp and nonce (and in safe mode the
    ciphertext), sorted and joined."""
    joined = "".join(sorted([token, timestamp, nonce, *signed]))
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()


def verify_push(
    token: str,
    signature: str | None,
    timestamp: str | None,
    nonce: str | None,
    *,
    encrypted: str | None = None,
    now: float | None = None,
) -> tuple[int, str]:
    """The timestamp and nonce of a request WeChat signed with our token, recently;
    Unauthorized otherwise.

    With `encrypted`, `signature` is safe mode's msg_signature, which covers the ciphertext.
    """
    if not signature or not timestamp or not nonce or len(nonce) > MAX_NONCE:
        raise Unauthorized(BAD_SIGNATURE)
    signed = () if encrypted is None else (encrypted,)
    expected = push_signature(token, timestamp, nonce, *signed)
    # Bytes: compare_digest refuses non-ASCII str, and a forger chooses the signature.
    if not hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8")):
        raise Unauthorized(BAD_SIGNATURE)
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Unauthorized(STALE_TIMESTAMP)
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise Unauthorized(STALE_TIMESTAMP)
    return int(timestamp), nonce


@dataclass(frozen=True)
class PushKeys:
    """What verifies pushes: the Token, and in safe mode the cipher of the EncodingAESKey."""

    token: str = field(repr=False)
    cipher: PushCipher | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PushQuery:
    """The query WeChat adds to the push URL."""

    signature: str | None = None
    timestamp: str | None = None
    nonce: str | None = None
    msg_signature: str | None = None
    encrypt_type: str | None = None


@dataclass(frozen=True)
class VerifiedPush:
    """A push WeChat signed, recently; `body` is its plain text, decrypted in safe mode."""

    timestamp: int
    nonce: str
    encrypted: bool
    body: bytes = field(repr=False)


def open_push(
    keys: PushKeys, query: PushQuery, body: bytes, *, now: float | None = None
) -> VerifiedPush:
    """Verify a pushed request and return its plain text; Unauthorized when it is not WeChat's.

    With an EncodingAESKey configured only encrypted pushes are taken (compatible mode's
    plain copy is ignored): otherwise the signature of a captured safe-mode URL, which does
    not cover the body, would carry a body of the captor's choosing.
    """
    if keys.cipher is None:
        timestamp, nonce = verify_push(
            keys.token, query.signature, query.timestamp, query.nonce, now=now
        )
        if (query.encrypt_type or "raw").lower() != "raw":
            # Compatible mode's plain copy still reads; safe mode's body reads as nothing.
            log.warning("wechat push is encrypted: set WECHAT_PUSH_AES_KEY (安全模式)")
        return VerifiedPush(timestamp, nonce, encrypted=False, body=body)
    if (query.encrypt_type or "").lower() != "aes":
        raise Unauthorized(NOT_ENCRYPTED)
    encrypted = _encrypted_field(body)
    timestamp, nonce = verify_push(
        keys.token, query.msg_signature, query.timestamp, query.nonce, encrypted=encrypted, now=now
    )
    return VerifiedPush(timestamp, nonce, encrypted=True, body=_decrypt(keys.cipher, encrypted))


def answer_url_check(
    keys: PushKeys, query: PushQuery, echostr: str | None, *, now: float | None = None
) -> str:
    """What WeChat's URL check expects back: `echostr`, decrypted when it came encrypted.

    WeChat's mini-program docs send the check in plain text with `signature` in every mode;
    a check signed with `msg_signature` carries the echostr encrypted, and gets it decrypted.
    """
    if keys.cipher is not None and query.msg_signature is not None:
        if not echostr:
            raise BadRequest(NO_ECHOSTR)
        verify_push(
            keys.token,
            query.msg_signature,
            query.timestamp,
            query.nonce,
            encrypted=echostr,
            now=now,
        )
        return _decrypt(keys.cipher, echostr).decode("utf-8", errors="replace")
    verify_push(keys.token, query.signature, query.timestamp, query.nonce, now=now)
    if not echostr:
        raise BadRequest(NO_ECHOSTR)
    return echostr


def _encrypted_field(body: bytes) -> str:
    """The `Encrypt` of a safe-mode body; a body without one cannot be verified at all."""
    try:
        document = _load(body)
    except MalformedPush:
        raise Unauthorized(BAD_SIGNATURE) from None
    if isinstance(document, dict):
        encrypted = _text(document.get("Encrypt"))
    else:
        encrypted = _text(document.findtext("Encrypt"))
    if not encrypted:
        raise Unauthorized(BAD_SIGNATURE)
    return encrypted


def _decrypt(cipher: PushCipher, encrypted: str) -> bytes:
    try:
        return cipher.decrypt(encrypted)
    except UndecryptablePush as exc:
        # Signed with our token yet not ours to open: the key or the AppID is not this app's.
        log.warning("wechat push not decryptable", step=str(exc))
        raise Unauthorized(BAD_SIGNATURE) from None


# -- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """One template's answer in a subscription event."""

    template_id: str
    status: str
    popup_scene: str | None

    @property
    def accepted(self) -> bool:
        return self.status == "accept"


@dataclass(frozen=True)
class PushMessage:
    """What we use of a pushed message; `decisions` only for subscription events."""

    msg_type: str
    event: str
    openid: str
    create_time: int
    decisions: tuple[Decision, ...] = ()

    @property
    def is_subscription_event(self) -> bool:
        return self.event in SUBSCRIPTION_WRAPPERS


def parse_push(body: bytes) -> PushMessage:
    """A pushed body in either data format WeChat offers: JSON objects, XML otherwise."""
    document = _load(body)
    if isinstance(document, dict):
        return _parse_json(document)
    return _parse_xml(document)


def _load(body: bytes) -> dict[str, Any] | Element:
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return _load_json(stripped)
    return _load_xml(stripped)


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedPush("微信消息推送内容不是合法的JSON") from exc
    if not isinstance(document, dict):
        raise MalformedPush("微信消息推送内容必须是JSON对象")
    return document


def _load_xml(body: bytes) -> Element:
    try:
        # WeChat's messages carry no DTD; one here can only be an attack (entity expansion).
        root: Element = parse_xml(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise MalformedPush("微信消息推送内容不是合法的XML") from exc
    return root


def _parse_json(document: dict[str, Any]) -> PushMessage:
    msg_type, event = _text(document.get("MsgType")), _text(document.get("Event"))
    openid = _text(document.get("FromUserName"))
    if event not in SUBSCRIPTION_WRAPPERS:
        return PushMessage(msg_type, event, openid, create_time=0)

    # WeChat's own examples disagree: the wrapper key holding an array, or an object with
    # `List`, or `List` at the top; `List` an object for one template, an array for several.
    wrapper = SUBSCRIPTION_WRAPPERS[event]
    if wrapper in document:
        items = _json_items(document[wrapper])
    elif "List" in document:
        items = _json_items(document["List"])
    else:
        raise MalformedPush(NO_LIST)
    decisions = [
        _decision(item.get("TemplateId"), item.get("SubscribeStatusString"), item.get("PopupScene"))
        for item in items
    ]
    return _subscription_message(msg_type, event, openid, document.get("CreateTime"), decisions)


def _json_items(container: Any) -> list[dict[str, Any]]:
    if isinstance(container, dict) and "List" in container:
        container = container["List"]
    items = container if isinstance(container, list) else [container]
    if not all(isinstance(item, dict) for item in items):
        raise MalformedPush("订阅事件的模板列表格式错误")
    return items


def _parse_xml(root: Element) -> PushMessage:
    msg_type, event = _text(root.findtext("MsgType")), _text(root.findtext("Event"))
    openid = _text(root.findtext("FromUserName"))
    if event not in SUBSCRIPTION_WRAPPERS:
        return PushMessage(msg_type, event, openid, create_time=0)

    wrapper = root.find(SUBSCRIPTION_WRAPPERS[event])
    items = (wrapper if wrapper is not None else root).findall("List")
    decisions = [
        _decision(
            item.findtext("TemplateId"),
            item.findtext("SubscribeStatusString"),
            item.findtext("PopupScene"),
        )
        for item in items
    ]
    return _subscription_message(msg_type, event, openid, root.findtext("CreateTime"), decisions)


def _subscription_message(
    msg_type: str, event: str, openid: str, create_time: Any, decisions: list[Decision]
) -> PushMessage:
    if not openid or len(openid) > MAX_OPENID:
        raise MalformedPush("订阅事件缺少用户openid（FromUserName）")
    # JSON gives CreateTime as a string in WeChat's examples; a number is accepted too.
    created = str(create_time) if type(create_time) is int else _text(create_time)
    if not _TIMESTAMP.fullmatch(created):
        raise MalformedPush("订阅事件缺少时间（CreateTime）")
    if not decisions:
        raise MalformedPush(NO_LIST)
    return PushMessage(msg_type, event, openid, int(created), tuple(decisions))


def _decision(template_id: Any, status: Any, popup_scene: Any) -> Decision:
    template = _text(template_id)
    if not template or len(template) > MAX_TEMPLATE_ID:
        raise MalformedPush("订阅事件的模板ID（TemplateId）缺失或过长")
    result = _text(status)
    if not result or len(result) > 32:
        raise MalformedPush("订阅事件的订阅结果（SubscribeStatusString）缺失")
    if isinstance(popup_scene, bool) or not isinstance(popup_scene, str | int | None):
        raise MalformedPush("订阅事件的弹框场景（PopupScene）格式错误")
    scene = None if popup_scene is None else str(popup_scene).strip()[:16] or None
    return Decision(template_id=template, status=result, popup_scene=scene)


def _text(value: Any) -> str:
    """A field's text; anything but a string (an object where text belongs) reads as empty."""
    return value.strip() if isinstance(value, str) else ""


# -- applying --------------------------------------------------------------------------------


def dedupe_key(message: PushMessage, decision: Decision) -> str:
    key = f"{message.openid}:{message.create_time}:{message.event}:{decision.template_id}"
    if len(key) <= MAX_DEDUPE_KEY:
        return key
    # Only a template id far longer than WeChat's (43 characters) gets here.
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


async def receive_push(
    session: AsyncSession, push: VerifiedPush, *, now: float | None = None
) -> tuple[PushMessage, int]:
    """Take a verified push once: its message, and how many decisions were new and applied.

    The nonce is recorded in the transaction that applies the push: a push refused for its
    body leaves nothing behind, and one that commits cannot be taken again by any process.
    The body is read first, so a malformed one is refused without a write.
    """
    message = parse_push(push.body)
    if not await claim_nonce(session, push.timestamp, push.nonce, now=now):
        log.warning("wechat push refused", reason="replayed", timestamp=push.timestamp)
        raise Unauthorized(REPLAYED)
    return message, await apply_push(session, message)


async def claim_nonce(
    session: AsyncSession, timestamp: int, nonce: str, *, now: float | None = None
) -> bool:
    """Record a push's (timestamp, nonce); False when some request already recorded it.

    ON CONFLICT DO NOTHING: of two requests racing with one pair, the second waits for the
    first's transaction and then finds the row (PostgreSQL), or runs after it (SQLite).
    """
    inserted = await session.execute(
        insert_ignoring_conflicts(
            session, WeChatPushNonce, {"timestamp": timestamp, "nonce": nonce}
        ).returning(WeChatPushNonce.nonce)
    )
    if inserted.scalar_one_or_none() is None:
        return False
    # Purged here rather than by a job: pushes are few, and the primary key (timestamp
    # first) finds the expired rows.
    current = time.time() if now is None else now
    await session.execute(
        delete(WeChatPushNonce)
        .where(WeChatPushNonce.timestamp < int(current) - NONCE_RETENTION_SECONDS)
        .execution_options(synchronize_session=False)
    )
    return True


async def apply_push(session: AsyncSession, message: PushMessage) -> int:
    """Apply a pushed message; returns how many decisions were new and applied.

    Each decision is applied once: its push-event row is inserted first, and a redelivered
    push finds the row there and changes nothing.
    """
    if not message.is_subscription_event:
        return 0
    user = await UserRepository(session).by_openid(message.openid)
    if user is None or user.role != Role.advisor:
        # Customers answer subscription prompts too; their answers are not ours to keep.
        return 0
    decided_at = datetime.fromtimestamp(message.create_time, UTC)
    applied = 0
    for decision in message.decisions:
        inserted = await session.execute(
            insert_ignoring_conflicts(
                session,
                WeChatPushEvent,
                {
                    "dedupe_key": dedupe_key(message, decision),
                    "openid": message.openid,
                    "event": message.event,
                    "payload": {
                        "createTime": message.create_time,
                        "templateId": decision.template_id,
                        "status": decision.status,
                        "popupScene": decision.popup_scene,
                    },
                },
            ).returning(WeChatPushEvent.id)
        )
        if inserted.scalar_one_or_none() is None:
            continue
        await record_decision(
            session,
            advisor_id=user.id,
            template_id=decision.template_id,
            openid=message.openid,
            accepted=decision.accepted,
            add_credit=True,
            data={
                "source": "wechat_push",
                "popupScene": decision.popup_scene,
                "event": message.event,
            },
            at=decided_at,
        )
        applied += 1
    return applied
