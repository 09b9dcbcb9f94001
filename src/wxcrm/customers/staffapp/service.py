"""The rules of the staff mini program's customer endpoints (staff-api §4, §5).

An advisor (`employee` on the wire) sees and changes only the customers it owns; admins and
managers see all. Customers of the public pool appear in no list or count. Writes go through
the services every channel shares: records (create, change, follow up), assignment (history
and the advisor's notification) and the pool (release). A refused operation raises
`Refused`, which the router answers in the mini program's failure style.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.core import clock, idempotency
from wxcrm.core.errors import Conflict
from wxcrm.core.settings import Settings
from wxcrm.customers.assignment import service as assignment_service
from wxcrm.customers.assignment.service import AssignChannel, AssigneeProblem
from wxcrm.customers.models import AssignmentHistory, Customer, FollowUp
from wxcrm.customers.needs import NUMBER_FIELDS
from wxcrm.customers.permissions import may_see
from wxcrm.customers.pool import service as pool_service
from wxcrm.customers.pool.service import PoolChannel
from wxcrm.customers.records import service as records
from wxcrm.customers.records.filters import (
    CustomerFilters,
    count_where,
    filtered,
    follow_up_status,
)
from wxcrm.customers.records.schemas import FollowUpIn, SortField, fold_aliases
from wxcrm.customers.reminders import due_on
from wxcrm.customers.staffapp import refusals
from wxcrm.customers.staffapp.refusals import Refused
from wxcrm.customers.staffapp.schemas import (
    STORED_METHOD,
    WIRE_TYPE,
    AdvisorStatisticsOut,
    AssignmentLogOut,
    CreatedCustomerOut,
    CreatedFollowUpOut,
    CustomerCreateIn,
    CustomerFieldsIn,
    EmployeeOut,
    FollowUpItemOut,
    FollowUpStatusOut,
    ManagerStatisticsOut,
    SortBy,
    SortOrder,
    StaffAssignedOut,
    StaffCustomerDetailOut,
    StaffCustomerOut,
    StaffCustomerPage,
    StaffFollowUpIn,
    StaffListItemOut,
    StaffListQuery,
    TodayTodoOut,
)
from wxcrm.users.models import User
from wxcrm.users.repository import People, UserRepository, people

LOST = "流失客户"
MAY_NOT_ASSIGN = "无权限分配客户"
TOP_LEVEL_FORBIDDEN = "只有管理员、运营或派单老师可以手动设置线索等级为O类"
DUPLICATE_PHONE = "该手机号已存在客户记录"
DUPLICATE_WECHAT = "该微信号已存在客户记录"
REASON_GIVEN = "创建时指定负责人"
REASON_DEFAULT = "创建默认分配给创建人"
# The detail carries the newest follow-ups; the follow-ups endpoint has them all.
DETAIL_FOLLOW_UPS = 100
# The original lists at most this many staff (one page of its users service).
MAX_EMPLOYEES = 1000
IDEMPOTENCY_SCOPE = "staffapp.create"


# -- the people a customer names ----------------------------------------------------------------


# -- what each role receives -----------------------------------------------------------------


async def _status(session: AsyncSession, customer_id: str) -> str | None:
    status: str | None = await session.scalar(
        select(follow_up_status()).where(Customer.id == customer_id)
    )
    return status


async def _record(session: AsyncSession, customer: Customer) -> StaffCustomerOut:
    """The customer as it now is."""
    status = await _status(session, customer.id)
    named = await people(session, [customer.owner_id])
    return StaffCustomerOut.of(
        customer, assignedToUser=named.names(customer.owner_id), followUpStatus=status
    )


async def _customer(
    session: AsyncSession, user: User, customer_id: str, *, failure: str, forbidden: str
) -> Customer:
    """The customer, if there is one (else refused as `failure`, 客户不存在) and `user` may
    see it (else refused as `forbidden`, FORBIDDEN)."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise Refused(failure, records.NOT_FOUND)
    if not may_see(user, customer):
        raise Refused(forbidden, refusals.FORBIDDEN)
    return customer


# -- the list and its counts ----------------------------------------------------------------


def _filters(settings: Settings, user: User, query: StaffListQuery) -> CustomerFilters:
    """The list's filters: an advisor's are always its own customers, the pool never shows,
    and 流失客户 only when searched for or asked for."""
    records.check_choices(
        settings,
        {
            "leadSource": query.lead_source,
            "serviceCategory": query.service_category,
            "contractStatus": query.contract_status,
            "leadLevel": query.lead_level,
        },
    )
    show_lost = bool(query.search) or query.contract_status == LOST
    return CustomerFilters(
        keyword=query.search,
        name=query.name,
        phone=query.phone,
        contract_status=query.contract_status,
        lead_source=query.lead_source,
        service_category=query.service_category,
        lead_level=query.lead_level,
        lead_status=query.lead_status,
        follow_up_status=query.follow_up_status,
        owner_id=query.assigned_to if user.is_staff_manager else user.id,
        in_pool=False,
        created_from=query.created_start_date,
        created_to=query.created_end_date,
        assigned_from=query.assigned_start_date,
        assigned_to=query.assigned_end_date,
        excluded_contract_status=None if show_lost else LOST,
    )


async def list_customers(
    session: AsyncSession, settings: Settings, user: User, query: StaffListQuery
) -> StaffCustomerPage:
    """One page of the customers `user` may see, sorted as asked across all pages."""
    filters = _filters(settings, user, query)
    column = records.SORT_COLUMNS[SortField(query.sort_by.value)]
    descending = query.sort_order is SortOrder.desc
    order = column.desc() if descending else column.asc()
    if query.sort_by is SortBy.phone:
        order = order.nulls_last()  # customers reached only on WeChat last, on every database
    ordering = (order, Customer.id.desc() if descending else Customer.id.asc())
    offset = (query.page - 1) * query.limit
    listed = select(Customer, follow_up_status())
    if filters.searches_text:
        # Its total bounded (records.SEARCH_TOTAL_BOUND), from the same pass as its page.
        page, total = await records.searched_page(
            session, user, filters, ordering, offset, query.limit
        )
        found = {
            customer.id: (customer, status)
            for customer, status in await session.execute(listed.where(Customer.id.in_(page)))
        }
        rows = [found[customer_id] for customer_id in page]
    else:
        total = int(
            await session.scalar(
                filtered(select(func.count()).select_from(Customer), user, filters)
            )
            or 0
        )
        rows = list(
            await session.execute(
                filtered(listed, user, filters)
                .order_by(*ordering)
                .offset(offset)
                .limit(query.limit)
            )
        )
    named = await people(session, [customer.owner_id for customer, _ in rows])
    items = [
        StaffListItemOut.of(
            customer,
            assignedTo=named.ref(customer.owner_id),
            assignedToUser=named.names(customer.owner_id),
            followUpStatus=status,
        )
        for customer, status in rows
    ]
    return StaffCustomerPage.model_validate(
        {
            "customers": items,
            "total": total,
            "page": query.page,
            "limit": query.limit,
            "totalPages": (total + query.limit - 1) // query.limit,
            "hasMore": query.page * query.limit < total,
        }
    )


async def statistics(
    session: AsyncSession, settings: Settings, user: User, query: StaffListQuery
) -> ManagerStatisticsOut | AdvisorStatisticsOut:
    """Counts of the customers (the pool's aside) matching the search, owner, lead level and
    lead status, by contract status and, for admins and managers, by source and category.
    流失客户 are counted. A field a customer lacks is counted under "null"."""
    _filters(settings, user, query)  # the query is checked as the list's
    filters = CustomerFilters(
        keyword=query.search,
        owner_id=query.assigned_to if user.is_staff_manager else user.id,
        lead_level=query.lead_level,
        lead_status=query.lead_status,
        in_pool=False,
    )
    total = int(
        await session.scalar(filtered(select(func.count()).select_from(Customer), user, filters))
        or 0
    )

    async def by(column: Any) -> dict[str, int]:
        rows = await session.execute(
            filtered(select(column, func.count()).select_from(Customer), user, filters).group_by(
                column
            )
        )
        return {("null" if value is None else str(value)): int(n) for value, n in rows.all()}

    if not user.is_staff_manager:
        return AdvisorStatisticsOut(
            total=total,
            my_customers=total,
            by_contract_status=await by(Customer.contract_status),
        )
    return ManagerStatisticsOut(
        total=total,
        by_contract_status=await by(Customer.contract_status),
        by_lead_source=await by(Customer.lead_source),
        by_service_category=await by(Customer.service_category),
    )


def _window(start: date, end: date | None = None) -> tuple[datetime, datetime | None]:
    return clock.day_start(start), clock.day_start(end) if end else None


def _within(column: Any, window: tuple[datetime, datetime | None]) -> ColumnElement[bool]:
    start, end = window
    return and_(column >= start, column < end) if end else column >= start


async def today_todo(session: AsyncSession, user: User) -> TodayTodoOut:
    """Today's and this month's numbers, in Beijing days: of every customer for admins and
    managers, of the caller's own for advisors. The pool's customers are not counted."""
    today = clock.today()
    today_window = _window(today, today + timedelta(days=1))
    month_window = _window(today.replace(day=1))
    manager = user.is_staff_manager
    never_followed_up = Customer.last_follow_up_at.is_(None)

    def assigned(window: tuple[datetime, datetime | None]) -> ColumnElement[bool]:
        if manager:
            return _within(Customer.created_at, window)
        # Made by me, or given to me and not yet followed up.
        return or_(
            and_(Customer.created_by_id == user.id, _within(Customer.created_at, window)),
            and_(
                Customer.owner_id == user.id,
                _within(Customer.assigned_at, window),
                never_followed_up,
            ),
        )

    mine: ColumnElement[bool] = Customer.owner_id == user.id
    owned = Customer.owner_id.is_not(None)
    counts = (
        await session.execute(
            select(
                count_where(owned if manager else mine),
                count_where(assigned(month_window)),
                count_where(assigned(today_window)),
                count_where(never_followed_up if manager else and_(mine, never_followed_up)),
                count_where(
                    _within(Customer.signed_at, today_window)
                    if manager
                    else and_(mine, _within(Customer.signed_at, today_window))
                ),
            ).where(owned)
        )
    ).one()
    due_customers = due_on(today)
    if not manager:
        due_customers = due_customers.where(mine)
    due = select(func.count()).select_from(due_customers.subquery())
    return TodayTodoOut(
        total_leads=counts[0],
        month_assigned=counts[1],
        today_assigned=counts[2],
        pending_leads=counts[3],
        today_signed=counts[4],
        follow_ups_due_today=int(await session.scalar(due) or 0),
        is_admin=manager,
    )


# -- one customer -------------------------------------------------------------------------------


async def detail(session: AsyncSession, user: User, customer_id: str) -> StaffCustomerDetailOut:
    """The customer with the people it names and its newest follow-ups."""
    customer = await _customer(
        session, user, customer_id, failure="客户详情获取失败", forbidden="无权限访问此客户信息"
    )
    status = await _status(session, customer.id)
    follow_ups = await _follow_ups(session, customer.id, limit=DETAIL_FOLLOW_UPS)
    named = await people(
        session,
        [
            customer.owner_id,
            customer.created_by_id,
            customer.assigned_by_id,
            customer.last_updated_by_id,
            *(follow_up.user_id for follow_up in follow_ups),
        ],
    )
    return StaffCustomerDetailOut.of(
        customer,
        assignedToUser=named.names(customer.owner_id),
        followUpStatus=status,
        createdByName=named.called(customer.created_by_id, "未知"),
        assignedToName=named.called(customer.owner_id, "未分配"),
        assignedByName=named.called(customer.assigned_by_id, "未知"),
        createdByUser=named.names(customer.created_by_id),
        assignedByUser=named.names(customer.assigned_by_id),
        lastUpdatedByUser=named.names(customer.last_updated_by_id),
        followUps=[_follow_up_item(follow_up, named) for follow_up in follow_ups],
    )


def _fields(body: CustomerFieldsIn, *, sent_only: bool) -> dict[str, Any]:
    """The form's fields by Python name, `notes` and `serviceType` folded into `remarks` and
    `serviceCategory` where those are empty."""
    return fold_aliases(body.model_dump(exclude_unset=sent_only))


def _check(
    settings: Settings, user: User, fields: dict[str, Any], stored_level: str | None
) -> None:
    records.check_choices(
        settings,
        {
            "leadSource": fields.get("lead_source"),
            "serviceCategory": fields.get("service_category"),
            "contractStatus": fields.get("contract_status"),
            "leadLevel": fields.get("lead_level"),
        },
    )
    if records.raises_to_top_level(user, fields.get("lead_level"), stored_level):
        raise Refused(TOP_LEVEL_FORBIDDEN, refusals.FORBIDDEN)


async def _new_owner(
    session: AsyncSession, user: User, assigned_to: str | None, owner_id: str | None
) -> User | None:
    """The advisor a form's `assignedTo` gives the customer to, if another than `owner_id`:
    only admins and managers may (advisors are refused), and only to an active advisor."""
    if not assigned_to or assigned_to == owner_id:
        return None
    if not user.is_staff_manager:
        raise Refused(MAY_NOT_ASSIGN, refusals.FORBIDDEN)
    return await _assignee(session, assigned_to)


async def _assign_now(
    session: AsyncSession,
    settings: Settings,
    customer: Customer,
    to: User,
    by: User,
    reason: str | None,
) -> dict[str, Any] | None:
    """Assign through the assignment service (history, the advisor's notification); the
    customer is read again, and the notification's data returned."""
    assignment = await assignment_service.assign(
        session,
        settings,
        customer_ids=[customer.id],
        to=to,
        by=by,
        reason=reason,
        channel=AssignChannel.miniprogram,
    )
    if assignment.result.failed:
        raise Refused(assignment.result.failed[0].message)
    await session.refresh(customer)
    return assignment.notification_data


async def _assignee(session: AsyncSession, user_id: str) -> User:
    found = await assignment_service.find_assignee(session, user_id)
    if isinstance(found, AssigneeProblem):
        raise Refused(found.value)
    return found


async def create_customer(
    session: AsyncSession,
    settings: Settings,
    user: User,
    body: CustomerCreateIn,
    idempotency_key: str | None,
) -> CreatedCustomerOut | idempotency.Replay:
    """A new customer, the creator's unless `assignedTo` names someone: an advisor may name
    only itself; an admin or manager an active advisor, who is then assigned it (history,
    notification). With an idempotency key, a retry gets the first answer instead."""
    if idempotency_key:
        fingerprint = idempotency.request_fingerprint(
            body.model_dump(mode="json", by_alias=True, exclude_unset=True)
        )
        first = await idempotency.claim(
            session, _idempotency_scope(user), idempotency_key, fingerprint
        )
        if first is not None:
            return first

    fields = _fields(body, sent_only=False)
    assigned_to = fields.pop("assigned_to")
    reason = fields.pop("assignment_reason")
    _check(settings, user, fields, None)
    to = await _new_owner(session, user, assigned_to, user.id)
    if not fields.get("phone") and not fields.get("wechat_id"):
        raise Refused(records.MISSING_CONTACT, refusals.MISSING_CONTACT)
    fields |= records.need_card_values(settings, fields)
    default_reason = REASON_GIVEN if assigned_to else REASON_DEFAULT
    try:
        customer = await records.add_customer(
            session,
            fields,
            by=user,
            # Someone else's from the start through the assignment: created in the pool.
            owner_id=None if to else user.id,
            assignment_reason=reason or default_reason,
        )
    except Conflict as conflict:
        raise _duplicate(conflict) from conflict
    if to is not None:
        await _assign_now(session, settings, customer, to, user, reason or REASON_GIVEN)
    return CreatedCustomerOut.model_validate(
        {
            "id": customer.id,
            "customerId": customer.customer_no,
            "createdAt": customer.created_at,
            "customer": await _record(session, customer),
        }
    )


def _duplicate(conflict: Conflict) -> Refused:
    if conflict.message == records.WECHAT_TAKEN:
        return Refused(DUPLICATE_WECHAT, refusals.DUPLICATE_WECHAT)
    return Refused(DUPLICATE_PHONE, refusals.DUPLICATE_PHONE)


def _idempotency_scope(user: User) -> str:
    return f"{IDEMPOTENCY_SCOPE}:{user.id}"


async def remember(
    session: AsyncSession, user: User, idempotency_key: str, status_code: int, body: dict[str, Any]
) -> None:
    """Keep the answer of a create for its retries (in the request's transaction)."""
    await idempotency.remember(
        session, _idempotency_scope(user), idempotency_key, status_code, body
    )


async def update_customer(
    session: AsyncSession,
    settings: Settings,
    user: User,
    customer_id: str,
    body: CustomerFieldsIn,
) -> StaffCustomerOut:
    """Change the fields sent. A number sent empty keeps its value. A new owner (admins and
    managers only) is an assignment, with its history and notification."""
    customer = await _customer(
        session, user, customer_id, failure="客户信息更新失败", forbidden="无权限修改此客户信息"
    )
    changes = _fields(body, sent_only=True)
    assigned_to = changes.pop("assigned_to", None)
    reason = changes.pop("assignment_reason", None)
    for number in NUMBER_FIELDS:
        if number in changes and changes[number] is None:
            del changes[number]  # the mini program's "not filled in"
    _check(settings, user, changes, customer.lead_level)
    to = await _new_owner(session, user, assigned_to, customer.owner_id)
    phone = changes["phone"] if "phone" in changes else customer.phone
    wechat_id = changes["wechat_id"] if "wechat_id" in changes else customer.wechat_id
    if not phone and not wechat_id:
        raise Refused(records.MISSING_CONTACT, refusals.MISSING_CONTACT)
    changes |= records.need_card_values(settings, changes, customer)
    try:
        await records.apply_changes(session, customer, changes, by=user)
    except Conflict as conflict:
        raise Refused("客户信息更新失败", conflict.message) from conflict
    if to is not None:
        await _assign_now(session, settings, customer, to, user, reason)
    return await _record(session, customer)


async def assign(
    session: AsyncSession,
    settings: Settings,
    user: User,
    customer_id: str,
    assigned_to: str,
    reason: str | None,
) -> StaffAssignedOut:
    """Give the customer to an active advisor (admins and managers), with its history and
    the advisor's notification. Given to its owner again, it stays as it is: no history, no
    second message."""
    if not user.is_staff_manager:
        raise Refused(MAY_NOT_ASSIGN)
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise Refused(records.NOT_FOUND)
    to = await _assignee(session, assigned_to)
    notification: dict[str, Any] | None = None
    if customer.owner_id != to.id:
        notification = await _assign_now(session, settings, customer, to, user, reason)
    status = await _status(session, customer.id)
    named = await people(session, [customer.owner_id])
    return StaffAssignedOut.of(
        customer,
        assignedToUser=named.names(customer.owner_id),
        followUpStatus=status,
        notificationData=notification,
    )


# -- follow-ups, history ------------------------------------------------------------------------


async def _follow_ups(
    session: AsyncSession, customer_id: str, *, limit: int | None = None
) -> Sequence[FollowUp]:
    query = (
        select(FollowUp)
        .where(FollowUp.customer_id == customer_id)
        .order_by(FollowUp.created_at.desc(), FollowUp.id.desc())
        .limit(limit)
    )
    return (await session.scalars(query)).all()


def _follow_up_fields(follow_up: FollowUp) -> dict[str, Any]:
    next_at = follow_up.next_follow_up_at
    return {
        "_id": follow_up.id,
        "customerId": follow_up.customer_id,
        "type": WIRE_TYPE.get(follow_up.method, "other"),
        "content": follow_up.content,
        # In UTC as read back later, whatever offset the time was sent with.
        "nextFollowUpDate": next_at.astimezone(UTC) if next_at else None,
        "createdAt": follow_up.created_at,
        "updatedAt": follow_up.created_at,
    }


def _follow_up_item(follow_up: FollowUp, named: People) -> FollowUpItemOut:
    return FollowUpItemOut.model_validate(
        _follow_up_fields(follow_up) | {"createdBy": named.ref(follow_up.user_id)}
    )


async def add_follow_up(
    session: AsyncSession, user: User, customer_id: str, body: StaffFollowUpIn
) -> CreatedFollowUpOut:
    await _customer(
        session, user, customer_id, failure="跟进记录创建失败", forbidden="无权限跟进此客户"
    )
    stored = FollowUpIn.model_validate(
        {
            "method": STORED_METHOD[body.type],
            "content": body.content,
            "nextFollowUpAt": body.next_follow_up_date,
        }
    )
    follow_up = await records.add_follow_up(session, user, customer_id, stored)
    return CreatedFollowUpOut.model_validate(
        _follow_up_fields(follow_up) | {"createdBy": follow_up.user_id}
    )


async def follow_ups(session: AsyncSession, user: User, customer_id: str) -> list[FollowUpItemOut]:
    """Every follow-up of the customer, newest first."""
    await _customer(
        session,
        user,
        customer_id,
        failure="跟进记录获取失败",
        forbidden="无权限查看此客户的跟进记录",
    )
    rows = await _follow_ups(session, customer_id)
    named = await people(session, [row.user_id for row in rows])
    return [_follow_up_item(row, named) for row in rows]


_RELEASES = {PoolChannel.release.value, PoolChannel.auto_recycle.value}


async def assignment_logs(
    session: AsyncSession, user: User, customer_id: str
) -> list[AssignmentLogOut]:
    """Every change of the customer's owner, newest first: to the pool is a release."""
    await _customer(
        session,
        user,
        customer_id,
        failure="分配历史获取失败",
        forbidden="无权限查看此客户的分配历史",
    )
    rows = (
        await session.scalars(
            select(AssignmentHistory)
            .where(AssignmentHistory.customer_id == customer_id)
            .order_by(AssignmentHistory.created_at.desc(), AssignmentHistory.id.desc())
        )
    ).all()
    named = await people(
        session, [user_id for r in rows for user_id in (r.from_user_id, r.to_user_id, r.by_user_id)]
    )
    logs = []
    for row in rows:
        old, new, by = (
            named.ref(row.from_user_id),
            named.ref(row.to_user_id),
            named.ref(row.by_user_id),
        )
        logs.append(
            AssignmentLogOut.model_validate(
                {
                    "_id": row.id,
                    "customerId": row.customer_id,
                    "oldAssignedTo": old,
                    "newAssignedTo": new,
                    "assignedBy": by,
                    "assignedAt": row.created_at,
                    "reason": row.reason,
                    "action": "release" if row.channel in _RELEASES else "assign",
                    "createdAt": row.created_at,
                    "updatedAt": row.created_at,
                    "oldAssignedToUser": old,
                    "newAssignedToUser": new,
                    "assignedByUser": by,
                }
            )
        )
    return logs


# -- the pool, the staff, the follow-up status ---------------------------------------------


async def release(
    session: AsyncSession, settings: Settings, user: User, customer_id: str, reason: str
) -> StaffCustomerOut:
    """Put the customer back in the pool, with the reason: its owner, an admin or a manager,
    and never a frozen customer (the original's checks, in its order)."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise Refused(records.NOT_FOUND)
    if customer.owner_id is None:
        raise Refused(pool_service.ALREADY_IN_POOL)
    if customer.is_frozen:
        raise Refused("该线索已被冻结，无法释放到公海")
    if not user.is_staff_manager and customer.owner_id != user.id:
        raise Refused("只有客户负责人或管理员可以释放客户到公海")
    result = await pool_service.release_one(session, settings, user, customer_id, reason)
    if result.failed:  # signed (advisors), or someone moved it meanwhile
        raise Refused(result.failed[0].message)
    return await _record(session, result.done[0])


async def employees(session: AsyncSession, user: User) -> list[EmployeeOut]:
    """Active staff, newest first, for admins and managers; an advisor only itself."""
    staff = await UserRepository(session).active(MAX_EMPLOYEES) if user.is_staff_manager else [user]
    return [EmployeeOut.of(member) for member in staff]


async def follow_up_state(session: AsyncSession, user: User, customer_id: str) -> FollowUpStatusOut:
    customer = await _customer(
        session,
        user,
        customer_id,
        failure="跟进状态获取失败",
        forbidden="无权限查看此客户的跟进状态",
    )
    by_anyone = exists().where(FollowUp.customer_id == Customer.id).correlate(Customer)
    by_owner = by_anyone.where(FollowUp.user_id == Customer.owner_id)
    status, any_follow_up, owner_follow_up = (
        await session.execute(
            select(
                follow_up_status().label("status"),
                by_anyone.label("by_anyone"),
                by_owner.label("by_owner"),
            ).where(Customer.id == customer.id)
        )
    ).one()
    return FollowUpStatusOut(
        customer_id=customer.id,
        customer_name=customer.name,
        follow_up_status=status,
        transfer_count=customer.transfer_count or 0,
        has_follow_up=bool(any_follow_up),
        current_owner_has_follow_up=bool(owner_follow_up),
    )
