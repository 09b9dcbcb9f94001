"""An uploaded file that passed the import's check and waits for its uploader to confirm it,
then records the import's progress and result.

The file itself is kept in the row, not on one server's disk or in its memory: the confirm
and the progress polls may reach any of the app's processes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wxcrm.core.models import Base, IdMixin, IdType, JSONType, utcnow


class ImportStatus(StrEnum):
    checked = "checked"  # checked clean, waiting for 确认导入
    importing = "importing"  # confirmed; a process is importing it
    done = "done"  # every row imported
    failed = "failed"  # nothing imported (a row failed at confirm, or the process died)


class ImportStage(StrEnum):
    """What an import in progress is doing: its rows are checked, then written."""

    checking = "checking"
    writing = "writing"


class PendingImport(IdMixin, Base):
    __tablename__ = "pending_imports"

    created_by_id: Mapped[str] = mapped_column(IdType, ForeignKey("users.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    # The upload as it was checked; dropped once the import has finished either way.
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    row_count: Mapped[int]  # data rows the check read
    status: Mapped[str] = mapped_column(String(16), default=ImportStatus.checked.value)
    stage: Mapped[str | None] = mapped_column(String(16))
    rows_done: Mapped[int] = mapped_column(default=0)  # of the stage under way
    imported: Mapped[int | None]
    message: Mapped[str | None] = mapped_column(Text)
    # A failed import's row problems ({row, field, column, value, message}), as the check's.
    problems: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    # The importing process writes this as it goes: a row importing with an old one was
    # left by a process that died (its transaction rolled back).
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
