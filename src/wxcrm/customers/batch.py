"""The one result of a request about many customers (assign, claim, release): per customer
asked for, done or refused, a refusal carrying a machine code beside its Chinese message."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from wxcrm.core.errors import AppError, Conflict, NotFound

T = TypeVar("T")


class Refusal(StrEnum):
    """Why one customer of a batch was not moved."""

    NOT_FOUND = "NOT_FOUND"  # no such customer, or one the caller may not touch
    ALREADY_ASSIGNED = "ALREADY_ASSIGNED"  # already the chosen advisor's
    NOT_IN_POOL = "NOT_IN_POOL"  # has an owner (or another claim was first)
    ALREADY_IN_POOL = "ALREADY_IN_POOL"
    FROZEN = "FROZEN"
    SIGNED = "SIGNED"  # a protected contract status: advisors may not release it
    COOLING = "COOLING"  # its last owner may not claim it back yet
    DAILY_LIMIT = "DAILY_LIMIT"  # the advisor's claims for today are used up
    CAP_REACHED = "CAP_REACHED"  # the advisor holds as many customers as allowed
    CHANGED = "CHANGED"  # someone else moved it meanwhile


@dataclass(frozen=True)
class Failure:
    customer_id: str
    code: Refusal
    message: str  # what staff read: the same code may read differently per request


@dataclass
class BatchResult(Generic[T]):
    """Per customer id asked for: moved (`done`, ids or rows), or refused (`failed`)."""

    done: list[T] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)

    def fail(self, customer_id: str, code: Refusal, message: str) -> None:
        self.failed.append(Failure(customer_id, code, message))


def refusal_error(failure: Failure) -> AppError:
    """A single-customer request's refusal as HTTP: 404 for a customer that is not there
    (or not the caller's), 409 for every other state it is in."""
    if failure.code is Refusal.NOT_FOUND:
        return NotFound(failure.message)
    return Conflict(failure.message)
