"""客户详情、编辑、新建: one customer's cards, timeline and actions (follow up, assign,
release, freeze, delete), over the same services and rules as the JSON API."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Form, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.console.display import beijing, contract_tone, grouped_phone
from wxcrm.console.frame import frame_for
from wxcrm.console.routing import console_router, done, object_id, render_page, toast
from wxcrm.console.session import ConsoleUser, page_csrf
from wxcrm.console.templating import render
from wxcrm.core import clock
from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.errors import AppError, Forbidden, validation_details
from wxcrm.core.settings import Settings
from wxcrm.customers.assignment import service as assignment
from wxcrm.customers.assignment.schemas import AssignIn
from wxcrm.customers.batch import refusal_error
from wxcrm.customers.models import Customer
from wxcrm.customers.needs import EDUCATION_LEVELS, REST_SCHEDULES
from wxcrm.customers.pool import service as pool
from wxcrm.customers.pool.schemas import ReleaseIn
from wxcrm.customers.records import service
from wxcrm.customers.records.schemas import (
    CustomerCreateIn,
    CustomerUpdateIn,
    FollowUpIn,
    FollowUpMethod,
)
from wxcrm.customers.schemas import CustomerOut
from wxcrm.users.models import Role, User
from wxcrm.users.repository import People, UserRepository, people

# The region the inline follow-up form re-renders: the form and the timeline below it.
ACTIVITY_ID = "customer-activity"
MANAGERS_ONLY_ASSIGN = "只有管理员和经理可以分配客户"
MANAGERS_ONLY_FREEZE = "只有管理员和经理可以冻结客户"
MAX_ADVISORS = 1000
# What the customer did in the mini program (miniprogram.schemas.ActionType).
ACTION_NAMES = {
    "view_resume": "查看了顾问简历",
    "contact_advisor": "联系了顾问",
    "book_service": "预约了服务",
}

router = console_router()


# -- the customer form's fields, by card ---------------------------------------------------


@dataclass(frozen=True)
class FormField:
    """One field of the customer form, named as the API names it (the form's input name)."""

    name: str
    label: str
    kind: str = "text"  # text, tel, number, date, select, textarea
    # A fixed list, or the name of the Settings list the choices come from.
    choices: tuple[str, ...] | str = ()
    required: bool = False
    maxlength: int | None = None
    unit: str = ""
    hint: str = ""
    wide: bool = False

    def options(self, settings: Settings) -> Sequence[str]:
        return getattr(settings, self.choices) if isinstance(self.choices, str) else self.choices


@dataclass(frozen=True)
class FieldGroup:
    key: str
    title: str
    fields: tuple[FormField, ...]


FORM_GROUPS = (
    FieldGroup("basic", "基本信息", (
        FormField("name", "姓名", required=True, maxlength=64),
        FormField("phone", "手机号", "tel", maxlength=32, hint="手机号与微信号至少填一项"),
        FormField("wechatId", "微信号", maxlength=64),
        FormField("idCardNumber", "身份证号", maxlength=32),
        FormField("leadSource", "线索来源", "select", "lead_sources", required=True),
        FormField("serviceCategory", "服务类别", "select", "service_categories"),
        FormField("area", "所在区域", maxlength=64),
        FormField("address", "服务地址", maxlength=255, wide=True),
    )),
    FieldGroup("needs", "家政需求", (
        FormField("salaryBudget", "薪资预算", "number", unit="元/月"),
        FormField("expectedStartDate", "期望上户日期", "date"),
        FormField("expectedDeliveryDate", "预产期", "date"),
        FormField("serviceDays", "服务天数", "number", unit="天"),
        FormField("homeArea", "家庭面积", "number", unit="平方米"),
        FormField("familySize", "家庭人口", "number", unit="人"),
        FormField("restSchedule", "休息方式", "select", REST_SCHEDULES),
        FormField("educationRequirement", "学历要求", "select", EDUCATION_LEVELS),
        FormField("ageRequirement", "年龄要求", maxlength=64),
        FormField("genderRequirement", "性别要求", maxlength=16),
        FormField("originRequirement", "籍贯要求", maxlength=64),
    )),
    # The mini program's older free-text need card, kept as typed.
    FieldGroup("needCard", "需求卡", (
        FormField("needOrderType", "订单类型", maxlength=64),
        FormField("needServicePeriod", "服务周期", maxlength=255),
        FormField("needOnboardingTime", "上户时间", maxlength=255),
        FormField("needWorkingHours", "工作时间", maxlength=255),
        FormField("needSalary", "薪资要求", maxlength=255),
        FormField("needRestTime", "休息时间", maxlength=255),
        FormField("needFamilyMembers", "家庭成员", maxlength=255),
        FormField("needHouseArea", "房屋面积", maxlength=255),
        FormField("needServiceAddress", "服务地点", maxlength=255),
        FormField("needWorkContent", "工作内容", "textarea", maxlength=2000, wide=True),
        FormField("needRemarks", "需求备注", "textarea", maxlength=2000, wide=True),
    )),
    FieldGroup("deal", "成交", (
        FormField("contractStatus", "签约状态", "select", "contract_statuses", required=True),
        FormField("leadLevel", "线索等级", "select", "lead_levels"),
        FormField("dealAmount", "成交金额", "number", unit="元"),
    )),
    FieldGroup("remarks", "备注", (
        FormField("remarks", "备注", "textarea", maxlength=2000, wide=True),
    )),
)  # fmt: skip
FORM_FIELDS = {f.name: f for group in FORM_GROUPS for f in group.fields}
# Required text: sent blank, the model's own check names the field.
_REQUIRED_TEXT = {"name"}


# -- what each page shows ----------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    label: str
    text: str
    badge: str = ""  # CSS classes of a tag around the text
    wide: bool = False
    long: bool = False  # several lines as typed


@dataclass(frozen=True)
class Card:
    key: str
    title: str
    rows: list[Row]
    extra_title: str = ""
    extra: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class Event:
    """One line of the timeline."""

    kind: str  # followUp, assignment, action, created
    title: str
    who: str
    when: str
    body: str = ""
    note: str = ""


@dataclass(frozen=True)
class NextFollowUp:
    text: str
    state: str  # none, overdue, today, upcoming
    last: str


@dataclass(frozen=True)
class Record:
    """One customer as the detail page shows it (never its openid)."""

    id: str
    name: str
    status: str
    status_tone: str
    level: str
    frozen: bool
    frozen_reason: str
    owner_id: str | None
    owner: str
    created: str
    cards: list[Card]
    remarks: str
    timeline: list[Event]
    next: NextFollowUp


@dataclass
class RecordForm:
    """The 新建 / 编辑 form as posted: values by field name, and what was wrong."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    # The customer being edited (None: a new one): id, name and number.
    customer: tuple[str, str, str] | None = None


@dataclass
class FollowUpForm:
    values: dict[str, str] = field(default_factory=lambda: {"method": FollowUpMethod.phone})
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Dialog:
    """An action's dialog shown again, open, with its refusal."""

    name: str  # assign, release, freeze, unfreeze
    message: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)


# -- routes: "new" is declared before the id routes so it is never taken for an id ---------


@router.get("/customers/new")
async def new_customer(request: Request, user: ConsoleUser, settings: SettingsDep) -> HTMLResponse:
    """The 新建客户 form."""
    form = RecordForm(values={"leadSource": "其他", "contractStatus": "待定"})
    return _form_page(request, settings, user, form)


@router.post("/customers/new")
async def create_customer(
    request: Request, user: ConsoleUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """Create a customer (an advisor's own; a manager's starts in the public pool)."""
    form = RecordForm(values=await _posted(request, FORM_FIELDS))
    try:
        body = CustomerCreateIn.model_validate({k: v for k, v in form.values.items() if v})
    except ValidationError as invalid:
        form.errors = _field_errors(invalid, FORM_FIELDS)
        return _form_page(request, settings, user, form, status_code=400)
    try:
        customer = await service.create_customer(session, settings, user, body)
    except AppError as refused:
        await session.rollback()
        _place(form, refused)
        return _form_page(request, settings, user, form, status_code=refused.status_code)
    where = "，已放入公海" if customer.owner_id is None else ""
    return done(request, f"/customers/{customer.id}", f"已创建客户 {customer.name}{where}")


@router.get("/customers/{customer_id}")
async def customer_detail(
    request: Request,
    customer_id: str,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
) -> HTMLResponse:
    """客户详情: the cards, the next follow-up, the timeline and the actions."""
    return await _detail_page(request, settings, session, user, _checked(customer_id))


@router.get("/customers/{customer_id}/edit")
async def edit_customer(
    request: Request,
    customer_id: str,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
) -> HTMLResponse:
    """The 编辑客户 form, filled with what the customer has."""
    customer = await service.get_visible(session, user, _checked(customer_id))
    form = RecordForm(values=_stored_values(customer), customer=_heading(customer))
    return _form_page(request, settings, user, form)


@router.post("/customers/{customer_id}/edit")
async def update_customer(
    request: Request,
    customer_id: str,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """Save the customer form: every field as sent, a blank one cleared."""
    customer = await service.get_visible(session, user, _checked(customer_id))
    customer_id = customer.id
    form = RecordForm(values=await _posted(request, FORM_FIELDS), customer=_heading(customer))
    sent = {k: v if v or k in _REQUIRED_TEXT else None for k, v in form.values.items()}
    try:
        body = CustomerUpdateIn.model_validate(sent)
    except ValidationError as invalid:
        form.errors = _field_errors(invalid, FORM_FIELDS)
        return _form_page(request, settings, user, form, status_code=400)
    try:
        await service.update_customer(session, settings, user, customer_id, body)
    except AppError as refused:
        await session.rollback()
        _place(form, refused)
        return _form_page(request, settings, user, form, status_code=refused.status_code)
    return done(request, f"/customers/{customer_id}", "已保存客户资料")


@router.post("/customers/{customer_id}/follow-ups")
async def add_follow_up(
    request: Request,
    customer_id: str,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """添加跟进: the timeline and the form again (htmx), or the page."""
    customer_id = await _visible(session, user, customer_id)
    form = FollowUpForm(values=await _posted(request, FOLLOW_UP_LABELS))
    try:
        body = FollowUpIn.model_validate({k: v for k, v in form.values.items() if v})
    except ValidationError as invalid:
        form.errors = _field_errors(invalid, FOLLOW_UP_FIELDS)
        return await _activity(request, settings, session, user, customer_id, form, 400)
    await service.add_follow_up(session, user, customer_id, body)
    message = "已添加跟进记录"
    if not _wants_activity(request):
        return done(request, f"/customers/{customer_id}", message)
    response = await _activity(request, settings, session, user, customer_id, FollowUpForm(), 200)
    return toast(response, message)


@router.post("/customers/{customer_id}/assign")
async def assign_customer(
    request: Request,
    customer_id: str,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
    assigned_to: Annotated[str, Form(alias="assignedTo")] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """分配 the customer to an active advisor (managers and admins), as the API does."""
    if not user.is_staff_manager:
        raise Forbidden(MANAGERS_ONLY_ASSIGN)
    customer_id = await _visible(session, user, customer_id)
    dialog = Dialog("assign", values={"assignedTo": assigned_to, "reason": reason})
    try:
        body = AssignIn.model_validate(
            {"assignedTo": assigned_to.strip(), "assignmentReason": reason.strip() or None}
        )
    except ValidationError as invalid:
        for name, message in _field_errors(invalid, ASSIGN_FIELDS).items():
            dialog.errors["reason" if name == "assignmentReason" else name] = message
        return await _refused(request, settings, session, user, customer_id, dialog, 400)
    try:
        # Not assign_one: it reloads the customer for an answer this page does not give.
        moved = await assignment.assign_to(
            session,
            settings,
            customer_ids=[customer_id],
            assigned_to=body.assigned_to,
            by=user,
            reason=body.assignment_reason,
            channel=assignment.AssignChannel.console,
        )
        if moved.result.failed:
            raise refusal_error(moved.result.failed[0])
    except AppError as refused:
        dialog.errors, dialog.message = _dialog_errors(refused, "assignedTo")
        return await _refused(request, settings, session, user, customer_id, dialog, refused)
    # Already in the session (assign_to looked the advisor up): no second query.
    advisor = await UserRepository(session).get(body.assigned_to)
    name = advisor.name if advisor else ""
    return done(request, f"/customers/{customer_id}", f"已将客户分配给 {name}")


@router.post("/customers/{customer_id}/release")
async def release_customer(
    request: Request,
    customer_id: str,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """释放到公海, with its reason (advisors: their own, neither signed nor frozen)."""
    customer_id = await _visible(session, user, customer_id)
    dialog = Dialog("release", values={"reason": reason})
    try:
        body = ReleaseIn.model_validate({"reason": reason})
    except ValidationError as invalid:
        dialog.errors = _field_errors(invalid, RELEASE_FIELDS)
        return await _refused(request, settings, session, user, customer_id, dialog, 400)
    # Not release_one: it reloads the customer for an answer this page does not give.
    result = await pool.release(session, settings, user, [customer_id], body.reason)
    if result.failed:
        refused = refusal_error(result.failed[0])
        dialog.message = refused.message
        return await _refused(request, settings, session, user, customer_id, dialog, refused)
    # An advisor no longer sees a customer it let go: back to its list.
    where = f"/customers/{customer_id}" if user.is_staff_manager else "/customers"
    return done(request, where, "已释放到公海")


@router.post("/customers/{customer_id}/freeze")
async def freeze_customer(
    request: Request,
    customer_id: str,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """冻结, with its reason (managers and admins): the customer stays where it is."""
    return await _freeze(request, customer_id, user, session, settings, reason, frozen=True)


async def _freeze(
    request: Request,
    customer_id: str,
    user: User,
    session: AsyncSession,
    settings: Settings,
    reason: str,
    *,
    frozen: bool,
) -> Response:
    """冻结 or 解冻 with a reason, through the API's update (its rules and its history)."""
    if not user.is_staff_manager:
        raise Forbidden(MANAGERS_ONLY_FREEZE)
    customer_id = await _visible(session, user, customer_id)
    action = "freeze" if frozen else "unfreeze"
    dialog = Dialog(action, values={"reason": reason})
    if not reason.strip():
        dialog.errors["reason"] = "请填写冻结原因" if frozen else "请填写解冻原因"
        return await _refused(request, settings, session, user, customer_id, dialog, 400)
    try:
        body = CustomerUpdateIn.model_validate({"isFrozen": frozen, "frozenReason": reason})
    except ValidationError as invalid:
        label = "冻结原因" if frozen else "解冻原因"
        fields = {"frozenReason": FormField("frozenReason", label)}
        dialog.errors["reason"] = _field_errors(invalid, fields)["frozenReason"]
        return await _refused(request, settings, session, user, customer_id, dialog, 400)
    return await _update_frozen(request, settings, session, user, customer_id, body, dialog)


@router.post("/customers/{customer_id}/unfreeze")
async def unfreeze_customer(
    request: Request,
    customer_id: str,
    user: ConsoleUser,
    session: SessionDep,
    settings: SettingsDep,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """解冻, with its reason (managers and admins), kept in the customer's timeline."""
    return await _freeze(request, customer_id, user, session, settings, reason, frozen=False)


@router.post("/customers/{customer_id}/delete")
async def delete_customer(
    request: Request,
    customer_id: str,
    user: ConsoleUser,
    session: SessionDep,
    back: Annotated[str, Form()] = "",
) -> Response:
    """删除 (admins, as the service says): the customer, its follow-ups and history; back
    where it was asked from."""
    customer = await service.get_visible(session, user, _checked(customer_id))
    customer_id, name = customer.id, customer.name
    await service.delete_customer(session, user, customer_id)
    return done(request, _back(back, customer_id), f"已删除客户 {name}")


# -- pages ---------------------------------------------------------------------------------


async def _detail_page(
    request: Request,
    settings: Settings,
    session: AsyncSession,
    user: User,
    customer_id: str,
    *,
    status_code: int = 200,
    follow_up: FollowUpForm | None = None,
    dialog: Dialog | None = None,
) -> HTMLResponse:
    customer, events = await service.detail(session, user, customer_id)
    record = await _record(session, customer, events)
    advisors: list[tuple[str, str]] = []
    if user.is_staff_manager:
        staff = await UserRepository(session).active(MAX_ADVISORS)
        advisors = [
            (u.id, f"{u.name}（{u.username}）")
            for u in staff
            if u.role == Role.advisor.value and u.id != customer.owner_id
        ]
    return render_page(
        request, settings, user, "record/detail.html",
        active="customers", status_code=status_code,
        c=record, follow_up=follow_up or FollowUpForm(), dialog=dialog, advisors=advisors,
        methods=[m.value for m in FollowUpMethod], activity_id=ACTIVITY_ID, oob=False,
        can_manage=user.is_staff_manager, can_delete=user.is_admin,
    )  # fmt: skip


async def _activity(
    request: Request,
    settings: Settings,
    session: AsyncSession,
    user: User,
    customer_id: str,
    form: FollowUpForm,
    status_code: int,
) -> HTMLResponse:
    """The follow-up form and timeline alone (htmx), the next follow-up swapped beside it;
    without htmx, the whole page."""
    if not _wants_activity(request):
        return await _detail_page(
            request, settings, session, user, customer_id, status_code=status_code,
            follow_up=form,
        )  # fmt: skip
    customer, events = await service.detail(session, user, customer_id)
    record = await _record(session, customer, events)
    csrf, _ = page_csrf(request, settings)
    return render(
        request, "record/activity.html", status_code,
        frame=frame_for(user, active="customers", csrf=csrf), c=record, follow_up=form,
        methods=[m.value for m in FollowUpMethod], activity_id=ACTIVITY_ID, oob=True,
    )  # fmt: skip


def _form_page(
    request: Request, settings: Settings, user: User, form: RecordForm, *, status_code: int = 200
) -> HTMLResponse:
    return render_page(
        request, settings, user, "record/form.html",
        active="customers", status_code=status_code, form=form, groups=FORM_GROUPS,
        options={f.name: f.options(settings) for f in FORM_FIELDS.values() if f.kind == "select"},
    )  # fmt: skip


async def _refused(
    request: Request,
    settings: Settings,
    session: AsyncSession,
    user: User,
    customer_id: str,
    dialog: Dialog,
    refused: AppError | int,
) -> HTMLResponse:
    """The page again with the action's dialog open and its refusal; nothing written."""
    await session.rollback()
    status = refused if isinstance(refused, int) else refused.status_code
    return await _detail_page(
        request, settings, session, user, customer_id, status_code=status, dialog=dialog
    )


async def _update_frozen(
    request: Request,
    settings: Settings,
    session: AsyncSession,
    user: User,
    customer_id: str,
    body: CustomerUpdateIn,
    dialog: Dialog,
) -> Response:
    try:
        await service.update_customer(session, settings, user, customer_id, body)
    except AppError as refused:
        dialog.message = refused.message
        return await _refused(request, settings, session, user, customer_id, dialog, refused)
    message = "已冻结客户" if body.is_frozen else "已解冻客户"
    return done(request, f"/customers/{customer_id}", message)


# -- the record as shown ------------------------------------------------------------------


async def _record(
    session: AsyncSession, customer: Customer, events: list[dict[str, Any]]
) -> Record:
    wire = CustomerOut.of(customer).model_dump(by_alias=True)
    named = await people(session, _people_ids(customer, events))
    level = customer.lead_level or ""
    basic = [Row("客户编号", customer.customer_no), *_rows(FORM_GROUPS[0], wire)]
    needs = _rows(FORM_GROUPS[1], wire)
    need_card = [row for row in _rows(FORM_GROUPS[2], wire) if row.text]
    deal = [
        Row("签约状态", customer.contract_status,
            f"tag tag-{contract_tone(customer.contract_status)}"),
        Row("线索等级", level, f"level level-{level[:1]}" if level else ""),
        Row("签约时间", beijing(customer.signed_at)),
        *_rows(FORM_GROUPS[3], wire)[2:],
    ]  # fmt: skip
    system = _system_rows(customer, named)
    cards = [
        Card("basic", "基本信息", basic),
        Card("needs", "家政需求", needs, "需求卡" if need_card else "", need_card),
        Card("deal", "成交", deal),
        Card("system", "系统信息", system),
    ]
    return Record(
        id=customer.id,
        name=customer.name,
        status=customer.contract_status,
        status_tone=contract_tone(customer.contract_status),
        level=level,
        frozen=customer.is_frozen,
        frozen_reason=customer.frozen_reason or "",
        owner_id=customer.owner_id,
        owner=named.called(customer.owner_id, "公海"),
        created=beijing(customer.created_at),
        cards=cards,
        remarks=customer.remark or "",
        timeline=_timeline(customer, events, named),
        next=_next_follow_up(customer, events),
    )


def _rows(group: FieldGroup, wire: Mapping[str, Any]) -> list[Row]:
    return [
        Row(f.label, _shown(f, wire.get(f.name)), wide=f.wide, long=f.kind == "textarea")
        for f in group.fields
    ]


def _shown(f: FormField, value: Any) -> str:
    if value is None or value == "":
        return ""
    if f.name == "phone":
        return grouped_phone(value)
    if isinstance(value, float):
        text = f"{value:,.2f}"
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        text = str(value)
    return f"{text} {f.unit}" if f.unit else text


def _system_rows(customer: Customer, named: People) -> list[Row]:
    def who(user_id: str | None) -> str:
        return named.called(user_id, "已删除的员工") if user_id else ""

    def at(moment: datetime | None, user_id: str | None = None) -> str:
        parts = [who(user_id), beijing(moment)]
        return " · ".join(part for part in parts if part)

    if customer.owner_id is None:
        pool_state = f"在公海中（{beijing(customer.pool_entered_at)} 进入）"
    else:
        pool_state = "不在公海"
    frozen = "正常"
    if customer.is_frozen:
        frozen = f"已冻结（{at(customer.frozen_at, customer.frozen_by_id)}）"
    return [
        Row("负责人", who(customer.owner_id) or "公海"),
        Row("分配", at(customer.assigned_at, customer.assigned_by_id)),
        Row("分配原因", customer.assignment_reason or ""),
        Row("创建", at(customer.created_at, customer.created_by_id)),
        Row("最后更新", at(customer.updated_at, customer.last_updated_by_id)),
        Row("最后跟进", at(customer.last_follow_up_at, customer.last_follow_up_by_id)),
        Row("公海", pool_state),
        Row("入公海原因", (customer.pool_entry_reason or "") if customer.owner_id is None else ""),
        Row("领取次数", str(customer.claim_count or 0)),
        Row("流转次数", str(customer.transfer_count or 0)),
        Row("冻结状态", frozen, "tag tag-orange" if customer.is_frozen else ""),
        Row("冻结原因", customer.frozen_reason or ""),
    ]


def _people_ids(customer: Customer, events: Iterable[dict[str, Any]]) -> set[str | None]:
    ids = {
        customer.owner_id,
        customer.assigned_by_id,
        customer.created_by_id,
        customer.last_updated_by_id,
        customer.last_follow_up_by_id,
        customer.frozen_by_id,
    }
    for event in events:
        ids.update(event.get(key) for key in ("userId", "advisorId", "from", "to", "by"))
    return ids


def _timeline(customer: Customer, events: list[dict[str, Any]], named: People) -> list[Event]:
    def who(user_id: str | None, otherwise: str = "系统") -> str:
        return named.called(user_id, "已删除的员工") if user_id else otherwise

    shown: list[Event] = []
    for event in events:
        when = beijing(event["time"])
        if event["type"] == "followUp":
            planned = event["nextFollowUpAt"]
            note = f"下次跟进：{_planned(planned)}" if planned else ""
            title = f"跟进 · {event['method']}"
            author = who(event["userId"])
            shown.append(Event("followUp", title, author, when, event["content"], note))
        elif event["type"] == "assignment":
            title = _move(event, who)
            reason = f"原因：{event['reason']}" if event["reason"] else ""
            shown.append(Event("assignment", title, who(event["by"]), when, note=reason))
        elif event["type"] == "freeze":
            title = "冻结客户" if event["frozen"] else "解冻客户"
            reason = f"原因：{event['reason']}" if event["reason"] else ""
            shown.append(Event("freeze", title, who(event["userId"]), when, note=reason))
        else:
            done_what = ACTION_NAMES.get(event["actionType"], event["actionType"])
            title = f"客户在小程序中{done_what}"
            advisor = f"顾问 {who(event['advisorId'])}"
            shown.append(Event("action", title, advisor, when))
    creator = who(customer.created_by_id, "小程序或导入")
    shown.append(Event("created", "创建客户", creator, beijing(customer.created_at)))
    return shown


def _move(event: Mapping[str, Any], who: Any) -> str:
    """An assignment-history row in words."""
    to = who(event["to"], "公海")
    before = who(event["from"], "公海")
    channel = event["channel"]
    if channel == "claim":
        return f"{to} 从公海领取"
    if channel == "release":
        return f"释放到公海（原负责人 {before}）"
    if channel == "auto_recycle":
        return f"超期未跟进，系统收回公海（原负责人 {before}）"
    how = {"pool_assign": "从公海分配", "batch": "批量分配", "miniprogram": "小程序分配"}
    return f"{how.get(channel, '分配')}：{before} → {to}"


def _planned(moment: datetime) -> str:
    """A planned follow-up: its day, and the time when one was given."""
    local = moment.astimezone(clock.SHANGHAI)
    return local.date().isoformat() if local.time() == datetime.min.time() else beijing(moment)


def _next_follow_up(customer: Customer, events: list[dict[str, Any]]) -> NextFollowUp:
    """The latest follow-up's plan: a later follow-up supersedes an older plan (reminders)."""
    last = beijing(customer.last_follow_up_at)
    latest = next((e for e in events if e["type"] == "followUp"), None)
    planned: datetime | None = latest["nextFollowUpAt"] if latest else None
    if planned is None:
        return NextFollowUp("未安排", "none", last)
    day, today = clock.business_day(planned), clock.today()
    state = "overdue" if day < today else "today" if day == today else "upcoming"
    return NextFollowUp(_planned(planned), state, last)


# -- reading forms -------------------------------------------------------------------------

FOLLOW_UP_LABELS = {"method": "跟进方式", "content": "跟进内容", "nextFollowUpAt": "下次跟进日期"}
FOLLOW_UP_FIELDS = {
    "method": FormField("method", "跟进方式", "select"),
    "content": FormField("content", "跟进内容", "textarea", required=True),
    "nextFollowUpAt": FormField("nextFollowUpAt", "下次跟进日期", "date"),
}
ASSIGN_FIELDS = {
    "assignedTo": FormField("assignedTo", "顾问", "select", required=True),
    "assignmentReason": FormField("assignmentReason", "分配原因"),
}
RELEASE_FIELDS = {"reason": FormField("reason", "释放原因", required=True)}


async def _posted(request: Request, names: Iterable[str]) -> dict[str, str]:
    """The form's text fields (others ignored), stripped."""
    form = await request.form()
    values = {}
    for name in names:
        value = form.get(name)
        values[name] = value.strip() if isinstance(value, str) else ""
    return values


def _field_errors(invalid: ValidationError, fields: Mapping[str, FormField]) -> dict[str, str]:
    """The model's refusals by field, each in words naming its field."""
    errors: dict[str, str] = {}
    for detail in validation_details(list(invalid.errors())):
        name = detail["field"].split(".")[0]
        f = fields.get(name)
        if f is not None:
            errors.setdefault(name, _worded(f, detail["message"]))
    return errors


def _worded(f: FormField, message: str) -> str:
    if f.kind == "select":
        return f"请选择{f.label}" if f.required else f"请从列表中选择{f.label}"
    if message == "该字段为必填项" or message.startswith("长度不能少于"):
        return f"请填写{f.label}"
    if message in {"不是合法的时间", "不是合法的日期"}:
        return f"{f.label}格式不正确"
    if message.startswith(f.label) or message.startswith("日期须在"):
        return message  # the model's own words already say which
    return f"{f.label}{message}"


def _place(form: RecordForm, refused: AppError) -> None:
    """Put the service's refusal beside the field it concerns, else above the form."""
    for detail in refused.details if isinstance(refused.details, list) else []:
        name = detail.get("field")
        if name in FORM_FIELDS:
            f = FORM_FIELDS[name]
            message = str(detail.get("message") or refused.message)
            if message.startswith(f"{name} "):  # the API's words name the wire field
                message = _worded(f, message.removeprefix(f"{name} ").strip())
            form.errors[name] = message
            return
    if refused.message == service.TOP_LEAD_LEVEL_FORBIDDEN:
        form.errors["leadLevel"] = refused.message
        return
    form.message = refused.message


def _dialog_errors(refused: AppError, field_name: str) -> tuple[dict[str, str], str | None]:
    """A refusal about the dialog's field goes beside it; anything else above the form."""
    details = refused.details if isinstance(refused.details, list) else []
    if any(detail.get("field") == field_name for detail in details):
        return {field_name: refused.message}, None
    return {}, refused.message


def _stored_values(customer: Customer) -> dict[str, str]:
    wire = CustomerOut.of(customer).model_dump(by_alias=True)
    return {name: _form_value(wire.get(name)) for name in FORM_FIELDS}


def _form_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.2f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _heading(customer: Customer) -> tuple[str, str, str]:
    return customer.id, customer.name, customer.customer_no


async def _visible(session: AsyncSession, user: User, customer_id: str) -> str:
    """The id of a customer `user` may see (404 otherwise): a plain string, still good after
    a service expired the row or a refusal rolled the session back."""
    return (await service.get_visible(session, user, _checked(customer_id))).id


def _checked(customer_id: str) -> str:
    """A customer id from the path; anything else ("export", a typo) is no customer."""
    return object_id(customer_id, service.NOT_FOUND)


def _wants_activity(request: Request) -> bool:
    return request.headers.get("HX-Target") == ACTIVITY_ID


def _back(back: str, deleted_id: str) -> str:
    """Where to go after a delete: a customers page of this site, else the list; never the
    deleted customer's own page."""
    back = back.strip()
    ours = back == "/customers" or back.startswith(("/customers?", "/customers/"))
    # "//" and "\\" could make another host of it; a line break, another header.
    tricks = any(bad in back for bad in ("//", "\\", "\r", "\n"))
    if not ours or tricks or back.startswith(f"/customers/{deleted_id}"):
        return "/customers"
    return back
