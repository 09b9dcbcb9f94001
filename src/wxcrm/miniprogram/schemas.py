"""Wire shapes of the endpoints the mini program calls, field for field as the production
mini program sends them."""

from __future__ import annotations

import json
import math
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wxcrm.core.ids import OBJECT_ID_PATTERN

# actionData and customerInfo are the client's free-form JSON: bounded so that a request
# cannot store megabytes or nest deep enough to hurt whoever reads it back.
MAX_FREE_JSON_BYTES = 8 * 1024
MAX_FREE_JSON_DEPTH = 5
PHONE_FIELD_MAX = 32


class ActionType(StrEnum):
    view_resume = "view_resume"
    contact_advisor = "contact_advisor"
    book_service = "book_service"


def _check_free_json_values(value: dict[str, Any]) -> None:
    """Depth and non-finite numbers, walked without recursion (NUL characters never get
    here: core.middleware.RefuseNulMiddleware refuses them in every body).

    The walk stops at the first level past the limit, so a body nested a thousand deep costs
    no more than one nested six deep (a recursive walk ran out of stack: a 500).
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_FREE_JSON_DEPTH:
                raise ValueError(f"嵌套层级不能超过{MAX_FREE_JSON_DEPTH}层")
            if isinstance(item, dict):
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            # Python's JSON parser takes NaN and Infinity; JSON (and PostgreSQL's jsonb) do not.
            raise ValueError("不能包含 NaN 或 Infinity")


def check_free_json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    _check_free_json_values(value)
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_FREE_JSON_BYTES:
        raise ValueError(f"内容不能超过{MAX_FREE_JSON_BYTES}字节")
    return value


def _blank_is_absent(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class _In(BaseModel):
    # The original accepted and ignored fields it did not know; so do we.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, str_strip_whitespace=True)


class OpenidIn(_In):
    code: str = Field(min_length=1, max_length=128, description="wx.login() 返回的 code")


class PhoneIn(_In):
    code: str = Field(min_length=1, max_length=128, description="getPhoneNumber 按钮回调里的 code")


class SubscribeDataIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    source: str | None = Field(None, max_length=64)
    timestamp: str | None = Field(None, max_length=64)
    user_agent: dict[str, Any] | str | None = Field(None, alias="userAgent")
    subscription_status: Literal["accept", "reject", "ban", "filter", "acceptWithAudio"] | None = (
        Field(None, alias="subscriptionStatus")
    )


class AdvisorSubscribeIn(_In):
    advisor_id: str = Field(alias="advisorId", pattern=OBJECT_ID_PATTERN.pattern)
    openid: str = Field(min_length=1, max_length=64)
    template_id: str = Field(alias="templateId", min_length=1, max_length=128)
    subscribed: bool
    subscribe_data: SubscribeDataIn | None = Field(None, alias="subscribeData")

    @field_validator("subscribe_data", mode="before")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        # Kept as it came, extra fields and all: bounded like the other free-form JSON.
        return check_free_json(value) if isinstance(value, dict) else value


class CustomerActionIn(_In):
    customer_id: str = Field(alias="customerId", min_length=1, max_length=64)
    advisor_id: str = Field(alias="advisorId", pattern=OBJECT_ID_PATTERN.pattern)
    action_type: ActionType = Field(alias="actionType")
    action_data: dict[str, Any] = Field(alias="actionData")
    customer_name: str | None = Field(None, alias="customerName", max_length=50)
    customer_phone: str | None = Field(
        None, alias="customerPhone", max_length=PHONE_FIELD_MAX, pattern=r"^\+?[\d\s\-()（）]+$"
    )
    resume_id: str | None = Field(None, alias="resumeId", max_length=64)
    ip: str | None = Field(None, max_length=64)
    user_agent: str | None = Field(None, alias="userAgent", max_length=512)
    customer_record_id: str | None = Field(
        None, alias="customerRecordId", pattern=OBJECT_ID_PATTERN.pattern
    )
    timestamp: str | int | None = None
    customer_info: dict[str, Any] | None = Field(None, alias="customerInfo")

    _blank_optional = field_validator(
        "customer_name",
        "customer_phone",
        "resume_id",
        "ip",
        "user_agent",
        "customer_record_id",
        mode="before",
    )(_blank_is_absent)

    @field_validator("action_data", "customer_info")
    @classmethod
    def _bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_free_json(value)

    @field_validator("timestamp")
    @classmethod
    def _short_timestamp(cls, value: str | int | None) -> str | int | None:
        # Kept as text of at most 64 characters, a number's digits too.
        if value is not None and len(str(value)) > 64:
            raise ValueError("长度不能超过64个字符")
        return value


class TemplateValue(BaseModel):
    model_config = ConfigDict(extra="ignore")

    value: str | int | float = Field(description="关键词的值")


class MessageSendIn(_In):
    touser: str = Field(min_length=1, max_length=64)
    template_id: str = Field(min_length=1, max_length=128)
    data: dict[str, TemplateValue] = Field(min_length=1, max_length=30)
    page: str | None = Field(None, max_length=256)
    miniprogram_state: Literal["developer", "trial", "formal"] | None = None
    lang: Literal["zh_CN", "en_US", "zh_HK", "zh_TW"] | None = None


# -- answers ------------------------------------------------------------------------------------


class _Out(BaseModel):
    # Built by field name; sent by alias (the original's camelCase and `_id`).
    model_config = ConfigDict(populate_by_name=True)


class OpenidOut(_Out):
    openid: str
    token: str = Field(description="小程序会话令牌：其余接口的 Bearer token")
    expires_in: int = Field(serialization_alias="expiresIn", description="有效秒数")


class PhoneOut(_Out):
    phone_number: str = Field(serialization_alias="phoneNumber")
    verified: bool


class SubscriptionOut(_Out):
    id: str = Field(serialization_alias="_id")
    advisor_id: str = Field(serialization_alias="advisorId")
    openid: str | None
    template_id: str = Field(serialization_alias="templateId")
    subscribed: bool
    subscribe_time: datetime | None = Field(serialization_alias="subscribeTime")
    credits: int = Field(description="还可发送的消息数")


class ActionOut(_Out):
    id: str = Field(serialization_alias="_id")
    customer_id: str = Field(serialization_alias="customerId", description="客户的 openid")
    advisor_id: str = Field(serialization_alias="advisorId")
    action_type: str = Field(serialization_alias="actionType")
    customer_record_id: str | None = Field(
        serialization_alias="customerRecordId",
        description="客户记录 _id；只给这位客户本人",
    )
    notified: bool


class ActionCustomerOut(_Out):
    id: str = Field(serialization_alias="_id")
    name: str
    phone: str
    lead_source: str = Field(serialization_alias="leadSource")
    customer_no: str = Field(serialization_alias="customerId", description="客户编号")


class CustomerActionOut(_Out):
    action_id: str = Field(serialization_alias="actionId")
    customer_created: bool | None = Field(
        serialization_alias="customerCreated",
        description="是否新建了客户线索；未带登录凭证的调用为 null（不透露）",
    )
    customer_id: str | None = Field(
        serialization_alias="customerId", description="客户记录 _id；只给这位客户本人"
    )
    action: ActionOut
    customer: ActionCustomerOut | None


class MessageSentOut(_Out):
    errcode: int
    errmsg: str
    msgid: int | str = Field(description="微信返回的消息 ID")
