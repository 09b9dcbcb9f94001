"""Work that must follow a commit and never a rollback: counting what was done, logging it.

`when_committed(session, action)` runs `action` once the session's transaction commits;
if it rolls back, the action is dropped. A savepoint's release or rollback is neither: the
transaction around it decides.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

_PENDING = "wxcrm_when_committed"


def when_committed(session: AsyncSession, action: Callable[[], None]) -> None:
    session.sync_session.info.setdefault(_PENDING, []).append(action)


@event.listens_for(Session, "after_commit")
def _run_committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the outer transaction may still roll back
    for action in session.info.pop(_PENDING, ()):
        action()


# "soft": also a rollback that had no database transaction to end (nothing was sent yet).
@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    if previous.nested:
        return  # a savepoint rolled back: what came before it may still commit
    session.info.pop(_PENDING, None)
