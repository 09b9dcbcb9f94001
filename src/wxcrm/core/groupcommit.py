"""Group commit: what concurrent requests ask to write, written together in one transaction.

A request hands its item to the process's `GroupCommit` and waits. A writer takes every
item waiting at that moment (up to a bound), writes them in one transaction and commits;
each request is answered only after that commit, so nothing acknowledged is lost. Items
that arrive while a batch is written make the next batch: under load a transaction carries
many items, and alone an item is written at once.

The writer is a short-lived task, started by the first item that finds none running and
ended when nothing waits: no background task to start or stop with the app. With
`writers` above one, items that arrive while every running writer is busy start another,
up to that many: on PostgreSQL one batch's round trips then overlap another's work (on
SQLite one writer is all the database allows).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

log = structlog.get_logger(__name__)

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

# What `write` gives for each item: its outcome, or the error to answer its request with
# (a refusal decided before anything of it was written).
WriteBatch = Callable[[AsyncSession, Sequence[Item]], Awaitable[list[Outcome | Exception]]]


class GroupCommit(Generic[Item, Outcome]):
    """Writes items with `write` in transactions opened by `begin`, many to a transaction.

    `write` must refuse an item (return its error) without writing anything of it, so
    that a refusal does not undo the others. Should the whole transaction fail, each item
    is written again in a transaction of its own: one item's failure is its own request's.
    """

    def __init__(
        self,
        begin: Callable[[], AbstractAsyncContextManager[AsyncSession]],
        write: WriteBatch[Item, Outcome],
        *,
        max_batch: int = 100,
        writers: int = 1,
    ) -> None:
        self._begin = begin
        self._write = write
        self._max_batch = max_batch
        self._most_writers = writers
        self._waiting: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._writers: set[asyncio.Task[None]] = set()  # referenced while they run
        self._running = 0  # writers started and not yet returned
        self._idle = 0  # of those, the ones not writing a batch (about to look again)

    async def submit(self, item: Item) -> Outcome:
        """Write `item` with whatever else is waiting; its outcome once committed."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._idle == 0 and self._running < self._most_writers:
            # Counted here, not when the task runs or ends: the next item must know at once.
            self._running += 1
            self._idle += 1
            # In a context of its own: it writes other requests' items too, and its log
            # lines must not carry the request id (or caller) of the one that started it.
            writer = asyncio.create_task(self._write_waiting(), context=contextvars.Context())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await future

    async def _write_waiting(self) -> None:
        # Counted idle from its creation (in `submit`) until it takes a batch, and between
        # batches: an item that finds a writer idle leaves it to that one.
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                self._idle -= 1
                try:
                    await self._write_batch(batch)
                finally:
                    self._idle += 1
        finally:
            self._idle -= 1
            self._running -= 1

    async def _write_batch(self, batch: list[tuple[Item, asyncio.Future[Outcome]]]) -> None:
        # A request given up meanwhile (its client went away) was never acknowledged.
        batch = [(item, future) for item, future in batch if not future.done()]
        try:
            await self._commit(batch)
        except Exception as error:
            if len(batch) == 1:
                _answer(batch[0][1], error)
                return
            log.warning(
                "group commit failed, writing its items one by one",
                items=len(batch),
                error=type(error).__name__,
            )
            for one in batch:
                try:
                    await self._commit([one])
                except Exception as alone:
                    _answer(one[1], alone)
        except BaseException as stopped:  # cancelled: the waiting requests fail
            for _, future in [*batch, *self._waiting]:
                _answer(future, stopped)
            self._waiting.clear()
            raise

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Outcome]]]) -> None:
        if not batch:
            return
        async with self._begin() as session:
            outcomes = await self._write(session, [item for item, _ in batch])
            await session.commit()
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _answer(future, outcome)


def _answer(future: asyncio.Future[Outcome], outcome: Outcome | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
