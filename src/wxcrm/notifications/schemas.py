"""Wire shapes of the notifications view."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class AttemptOut(_Out):
    number: int
    worker_id: str | None = Field(serialization_alias="workerId")
    outcome: str
    errcode: int | None
    errmsg: str | None
    http_status: int | None = Field(serialization_alias="httpStatus")
    started_at: datetime = Field(serialization_alias="startedAt")
    finished_at: datetime | None = Field(serialization_alias="finishedAt")


class NotificationOut(_Out):
    id: str = Field(serialization_alias="_id")
    event: str
    channel: str
    advisor_id: str | None = Field(serialization_alias="advisorId")
    template_id: str | None = Field(serialization_alias="templateId")
    payload: dict[str, Any]
    fold_count: int = Field(serialization_alias="foldCount")
    status: str
    attempts: int
    scheduled_at: datetime = Field(serialization_alias="scheduledAt")
    last_errcode: int | None = Field(serialization_alias="lastErrcode")
    last_errmsg: str | None = Field(serialization_alias="lastErrmsg")
    skip_reason: str | None = Field(serialization_alias="skipReason")
    msgid: str | None
    sent_at: datetime | None = Field(serialization_alias="sentAt")
    created_at: datetime = Field(serialization_alias="createdAt")
    updated_at: datetime = Field(serialization_alias="updatedAt")


class NotificationDetailOut(NotificationOut):
    attempt_log: list[AttemptOut] = Field(serialization_alias="attemptLog")
