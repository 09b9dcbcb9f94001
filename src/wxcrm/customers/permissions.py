"""Data permissions: an advisor sees and changes only its own customers; managers and
admins see all."""

from __future__ import annotations

from sqlalchemy import ColumnElement, true

from wxcrm.customers.models import Customer
from wxcrm.users.models import User


def visible_to(user: User) -> ColumnElement[bool]:
    """The customers `user` may see, as a WHERE clause."""
    if user.is_staff_manager:
        return true()
    return Customer.owner_id == user.id


def may_see(user: User, customer: Customer) -> bool:
    return user.is_staff_manager or customer.owner_id == user.id
