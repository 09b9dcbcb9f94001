"""The customer list's filters as one WHERE clause, shared by every list of customers (the
console's, the staff mini program's, export): search, lists, owner, pool, dates, transfers,
and the follow-up status (跟进状态) rule, written once as SQL for the filter and the tag."""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVarTuple

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    String,
    and_,
    case,
    exists,
    func,
    intersect,
    literal,
    null,
    or_,
    select,
    table,
)
from sqlalchemy import column as sql_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from wxcrm.core import clock
from wxcrm.core.db import ContainsIgnoringCase
from wxcrm.core.phones import phone_digits
from wxcrm.customers.models import Customer, FollowUp
from wxcrm.customers.permissions import visible_to
from wxcrm.users.models import User

SIGNED = "已签约"
# The lead level only managers set by hand: such a customer carries no follow-up tag.
TOP_LEVEL = "O类"


class FollowUpStatus(StrEnum):
    followed_up = "已跟进"
    transferred_not_followed_up = "流转未跟进"
    new_not_followed_up = "新客未跟进"


class LeadStatus(StrEnum):
    """Whether the system has ever taken the customer back (流转: `transfer_count`)."""

    transferred = "已流转"
    not_transferred = "未流转"


@dataclass(frozen=True)
class CustomerFilters:
    search: str | None = None
    contract_status: str | None = None
    lead_source: str | None = None
    service_category: str | None = None
    lead_level: str | None = None
    owner_id: str | None = None
    in_pool: bool | None = None
    created_from: date | None = None
    created_to: date | None = None
    # Text found anywhere in the name, phone, WeChat id or customer number (the staff mini
    # program's search), matched literally.
    keyword: str | None = None
    name: str | None = None
    phone: str | None = None
    lead_status: LeadStatus | None = None
    follow_up_status: FollowUpStatus | None = None
    assigned_from: date | None = None
    assigned_to: date | None = None
    # A contract status left out unless asked for (the mini program hides 流失客户).
    excluded_contract_status: str | None = None

    @property
    def searches_text(self) -> bool:
        """Whether text typed by a user narrows the list (its total is then bounded)."""
        return any((self.search, self.keyword, self.name, self.phone))


_Columns = TypeVarTuple("_Columns")


def filtered(query: Select[*_Columns], user: User, filters: CustomerFilters) -> Select[*_Columns]:
    query = query.where(visible_to(user))
    if filters.search:
        query = query.where(search_clause(filters.search))
    if filters.keyword:
        query = query.where(keyword_clause(filters.keyword))
    if filters.name:
        query = query.where(name_contains(filters.name))
    if filters.phone:
        query = query.where(ContainsIgnoringCase(Customer.phone, filters.phone))
    for column, value in (
        (Customer.contract_status, filters.contract_status),
        (Customer.lead_source, filters.lead_source),
        (Customer.service_category, filters.service_category),
        (Customer.lead_level, filters.lead_level),
        (Customer.owner_id, filters.owner_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.excluded_contract_status is not None:
        query = query.where(Customer.contract_status != filters.excluded_contract_status)
    if filters.in_pool is not None:
        query = query.where(
            Customer.owner_id.is_(None) if filters.in_pool else Customer.owner_id.is_not(None)
        )
    if filters.lead_status is not None:
        query = query.where(lead_status_clause(filters.lead_status))
    if filters.follow_up_status is not None:
        query = query.where(follow_up_status() == filters.follow_up_status.value)
    for moment, start, end in (
        (Customer.created_at, filters.created_from, filters.created_to),
        (Customer.assigned_at, filters.assigned_from, filters.assigned_to),
    ):
        if start is not None:
            query = query.where(moment >= day_start(start))
        if end is not None:
            query = query.where(moment < day_start(end, next_day=True))
    return query


def search_clause(search: str) -> ColumnElement[bool]:
    """Digits match a phone or customer-number prefix; other text is part of the name."""
    term = search.strip()
    digits = phone_digits(term).upper().removeprefix("CUS")
    if digits.isdigit():
        return or_(_prefix(Customer.phone, digits), _prefix(Customer.customer_no, f"CUS{digits}"))
    return name_contains(term)


def name_contains(term: str) -> ColumnElement[bool]:
    """`term` inside the name, ignoring case; from two characters on, only among the
    customers whose name has the term's two-character pieces (an index finds them)."""
    contains = ContainsIgnoringCase(Customer.name, term)
    if len(term) < 2:
        return contains
    return and_(_NameBigrams(term), contains)


# The migration's bigrams of each customer's name (SQLite; PostgreSQL indexes an expression).
_BIGRAMS = table("search_customer_name_bigrams", sql_column("bigram"), sql_column("customer_id"))
# Pieces of the term looked up on SQLite: more narrow less, and each is a lookup.
_LOOKED_UP = 3
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class _NameBigrams(ColumnElement[bool]):
    """The customers whose name has every two-character piece of `term` (a superset of
    those whose name contains it: the contains-match still decides).

    PostgreSQL: the GIN index on `search_bigrams(name)` (the migration's function).
    SQLite: the `search_customer_name_bigrams` table its triggers keep, for up to three
    pieces of the term, lower-cased as SQLite's lower() does (ASCII only).
    """

    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy declares it so)
        ("indexed", InternalTraversal.dp_clauseelement),
        ("looked_up", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, term: str) -> None:
        self.indexed = func.search_bigrams(Customer.name).op("@>")(
            func.search_bigrams(literal(term, String))
        )
        folded = term.translate(_ASCII_LOWER)
        pieces = sorted({folded[i : i + 2] for i in range(len(folded) - 1)})
        chosen = (
            pieces
            if len(pieces) <= _LOOKED_UP
            else [pieces[0], pieces[len(pieces) // 2], pieces[-1]]
        )
        lookups = [
            select(_BIGRAMS.c.customer_id).where(_BIGRAMS.c.bigram == literal(piece, String))
            for piece in chosen
        ]
        self.looked_up = Customer.id.in_(intersect(*lookups) if len(lookups) > 1 else lookups[0])


@compiles(_NameBigrams)
def _indexed_bigrams(element: _NameBigrams, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.indexed, **kw)


@compiles(_NameBigrams, "sqlite")
def _looked_up_bigrams(element: _NameBigrams, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.looked_up, **kw)


def keyword_clause(keyword: str) -> ColumnElement[bool]:
    """`keyword` inside the name, phone, WeChat id or customer number, ignoring case. LIKE's
    `%` and `_` in it are escaped: what staff type is matched as typed, never as a pattern."""
    term = keyword.strip()
    columns = (Customer.name, Customer.phone, Customer.wechat_id, Customer.customer_no)
    found = [ContainsIgnoringCase(column, term) for column in columns]
    digits = phone_digits(term)
    if digits != term and digits.isdigit():
        # A phone typed grouped or in full-width digits is also looked for as stored.
        numbers = (Customer.phone, Customer.customer_no)
        found += [ContainsIgnoringCase(column, digits) for column in numbers]
    return or_(*found)


def lead_status_clause(status: LeadStatus) -> ColumnElement[bool]:
    if status is LeadStatus.transferred:
        return Customer.transfer_count > 0
    return Customer.transfer_count == 0


def follow_up_status() -> ColumnElement[str | None]:
    """The customer's 跟进状态 as a column: one rule for the list's tag, its filter, the detail
    and the status endpoint.

    None for a signed (已签约) or O类 customer; 已跟进 once its current owner wrote a
    follow-up (a former owner's or a manager's do not count, and a customer of the pool has
    no owner to write one); otherwise 流转未跟进 if the system ever took it back, else
    新客未跟进.
    """
    owner_followed_up = (
        exists()
        .where(FollowUp.customer_id == Customer.id, FollowUp.user_id == Customer.owner_id)
        .correlate(Customer)
    )
    return case(
        (
            or_(Customer.contract_status == SIGNED, Customer.lead_level == TOP_LEVEL),
            null(),
        ),
        (owner_followed_up, _text(FollowUpStatus.followed_up)),
        (Customer.transfer_count > 0, _text(FollowUpStatus.transferred_not_followed_up)),
        else_=_text(FollowUpStatus.new_not_followed_up),
    )


def count_where(condition: ColumnElement[bool]) -> Any:
    """How many rows meet `condition`: several such counts share one scan."""
    return func.count(case((condition, 1)))


def _text(value: str) -> ColumnElement[str]:
    return literal(value, String())


def _prefix(column: Any, prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as a range the column's unique index can serve
    (LIKE 'p%' uses no index on PostgreSQL's default collation, nor on SQLite's NOCASE-less
    LIKE)."""
    after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(column >= prefix, column < after)


def day_start(day: date, next_day: bool = False) -> datetime:
    return clock.day_start(day + timedelta(days=1) if next_day else day)
