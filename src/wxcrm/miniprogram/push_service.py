"""WeChat's message push (消息推送, plain-text mode): signatures, parsing, subscription events.

WeChat tells us here what advisors answered to subscription prompts (SPEC §3.2), so the
credit ledger follows WeChat rather than the client's report of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import structlog
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core.db import insert_ignoring_conflicts
from wxcrm.core.errors import BadRequest, Unauthorized
from wxcrm.miniprogram.models import WeChatPushEvent
from wxcrm.notifications.subscriptions import record_decision
from wxcrm.users.models import Role
from wxcrm.users.repository import UserRepository

log = structlog.get_logger(__name__)

# A signed push older or newer than this is refused: a captured request cannot be replayed later.
MAX_CLOCK_SKEW_SECONDS = 10 * 60

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

_TIMESTAMP = re.compile(r"[0-9]{1,10}")

BAD_SIGNATURE = "微信消息推送签名无效"
STALE_TIMESTAMP = "微信消息推送时间戳无效或已过期"
MALFORMED = "微信消息推送内容格式错误"
NO_LIST = "订阅事件缺少模板列表（List）"


class MalformedPush(BadRequest):
    default_message = MALFORMED


# -- signature -------------------------------------------------------------------------------


def push_signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's signature: sha1 of the token, timestamp and nonce, sorted and joined."""
    joined = "".join(sorted([token, timestamp, nonce]))
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()


def verify_push(
    token: str,
    signature: str | None,
    timestamp: str | None,
    nonce: str | None,
    *,
    now: float | None = None,
) -> None:
    """Raise Unauthorized unless WeChat signed this request with our token, recently."""
    if not signature or not timestamp or not nonce:
        raise Unauthorized(BAD_SIGNATURE)
    expected = push_signature(token, timestamp, nonce)
    # Bytes: compare_digest refuses non-ASCII str, and a forger chooses the signature.
    if not hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8")):
        raise Unauthorized(BAD_SIGNATURE)
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Unauthorized(STALE_TIMESTAMP)
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise Unauthorized(STALE_TIMESTAMP)


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
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return _parse_json(stripped)
    return _parse_xml(stripped)


def _parse_json(body: bytes) -> PushMessage:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedPush("微信消息推送内容不是合法的JSON") from exc
    if not isinstance(document, dict):
        raise MalformedPush("微信消息推送内容必须是JSON对象")
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


def _parse_xml(body: bytes) -> PushMessage:
    try:
        # WeChat's messages carry no DTD; one here can only be an attack (entity expansion).
        root: Element = parse_xml(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise MalformedPush("微信消息推送内容不是合法的XML") from exc
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
