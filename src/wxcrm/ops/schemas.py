"""Wire shapes of the health checks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class LiveOut(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    status: Literal["ok"] = "ok"


class OutboxBacklog(BaseModel):
    """Notifications still needing attention, by state."""

    pending: int
    sending: int
    failed: int


class WeChatTokenState(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True)

    cached: bool = Field(description="有未过期的 access_token")
    expires_in: int | None = Field(description="剩余秒数；无缓存时为 null")


class HealthOut(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        json_schema_serialization_defaults_required=True,
    )

    status: Literal["ok"] = "ok"
    database: Literal["ok"] = Field("ok", description="数据库可写")
    outbox: OutboxBacklog
    wechat_token: WeChatTokenState
