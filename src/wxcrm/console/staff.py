"""员工管理 (admins only): the staff list, a new account, and each row's actions, over the
same service functions as /api/users."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Form, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.console.display import beijing, grouped_phone
from wxcrm.console.listing import SEARCH_MAX, ListQuery, read_page
from wxcrm.console.routing import console_router, done, render_page
from wxcrm.console.session import ConsoleUser
from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.errors import AppError, Forbidden, validation_details
from wxcrm.core.settings import Settings
from wxcrm.users import service
from wxcrm.users.models import User
from wxcrm.users.schemas import (
    ROLE_INPUTS,
    ROLE_LABELS,
    PasswordResetIn,
    StaffAccountOut,
    UserCreateIn,
    UserStatus,
)

ADMINS_ONLY = "只有系统管理员可以管理员工"
ROLE_CHOICES = [(code, ROLE_LABELS[code]) for code in ("employee", "manager", "admin")]
STATUS_CHOICES = [(UserStatus.active.value, "正常"), (UserStatus.inactive.value, "已停用")]
PAGE_SIZES = (10, 20, 50)
# What each action says when it is done: a toast on the list it goes back to.
DONE = {
    "created": "员工账号已创建",
    "suspended": "员工已停用，其登录已立即失效",
    "resumed": "员工已启用",
    "password": "密码已重置，该员工需用新密码重新登录",
    "unbound": "已解除微信绑定",
}
CREATE_LABELS = {
    "username": "用户名",
    "name": "姓名",
    "password": "密码",
    "role": "角色",
    "phone": "手机号",
    "department": "部门",
}


def admins_only(refusal: str) -> Callable[[User], Awaitable[User]]:
    """A dependency giving the signed-in admin; anyone else gets the 403 page saying
    `refusal`."""

    async def console_admin(user: ConsoleUser) -> User:
        if not user.is_admin:
            raise Forbidden(refusal)
        return user

    return console_admin


ConsoleAdmin = Annotated[User, Depends(admins_only(ADMINS_ONLY))]


@dataclass(kw_only=True)
class StaffQuery(ListQuery):
    """The staff list's query: anything unreadable in it (a filter too) falls back to the
    default rather than refusing the page."""

    path: str = "/staff"
    sizes: tuple[int, ...] = PAGE_SIZES

    @classmethod
    def of(cls, params: Mapping[str, str]) -> StaffQuery:
        role = params.get("role", "")
        status = params.get("status", "")
        values = {
            "search": params.get("search", "").strip()[:SEARCH_MAX],
            "role": role if role in dict(ROLE_CHOICES) else "",
            "status": status if status in {s.value for s in UserStatus} else "",
        }
        page, limit = read_page(params, PAGE_SIZES)
        return cls(values=values, page=page, limit=limit)


@dataclass(frozen=True)
class StaffRow:
    """One account as the table shows it."""

    account: StaffAccountOut
    phone: str
    created: str
    is_self: bool


@dataclass
class ActionError:
    """A row action refused: which account, which field (None: the row), what it says."""

    user_id: str
    message: str
    field: str | None = None


@dataclass
class CreateForm:
    values: dict[str, str] = field(default_factory=lambda: {"role": "employee"})
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None


router = console_router()


@router.get("/staff")
async def staff_list(
    request: Request, admin: ConsoleAdmin, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """员工管理: the accounts, searched and filtered, a page at a time."""
    query = StaffQuery.of(request.query_params)
    return await _list_page(request, settings, session, admin, query)


@router.get("/staff/new")
async def new_staff(request: Request, admin: ConsoleAdmin, settings: SettingsDep) -> HTMLResponse:
    """The 新建员工 form."""
    return _create_page(request, settings, admin, CreateForm())


@router.post("/staff")
async def create_staff(
    request: Request,
    admin: ConsoleAdmin,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    department: Annotated[str, Form()] = "",
) -> Response:
    """Create an account; a bad value is shown beside its field and nothing is written."""
    values = {
        "username": username, "name": name, "role": role,
        "phone": phone, "department": department,
    }  # fmt: skip
    form = CreateForm(values=values)
    try:
        body = UserCreateIn(
            username=username,
            name=name,
            password=password,
            role=role,  # checked by the model
            phone=phone.strip() or None,
            department=department.strip() or None,
        )
    except ValidationError as invalid:
        for detail in validation_details(list(invalid.errors())):
            form.errors.setdefault(detail["field"], _field_message(detail))
        return _create_page(request, settings, admin, form, status_code=400)
    try:
        await service.create_user(
            session,
            username=body.username,
            password=body.password,
            role=ROLE_INPUTS[body.role],
            name=body.name,
            phone=body.phone,
            department=body.department,
        )
    except AppError as refused:
        _place(form, refused)
        return _create_page(request, settings, admin, form, status_code=refused.status_code)
    return done(request, StaffQuery.of({}).url(), DONE["created"])


@router.post("/staff/{user_id}/suspend")
async def suspend_staff(
    request: Request,
    user_id: str,
    admin: ConsoleAdmin,
    session: SessionDep,
    settings: SettingsDep,
    back: Annotated[str, Form()] = "",
) -> Response:
    """停用: the account's sessions stop at once."""
    action = service.suspend_user(session, admin, user_id)
    return await _row_action(request, settings, session, admin, back, user_id, action, "suspended")


@router.post("/staff/{user_id}/resume")
async def resume_staff(
    request: Request,
    user_id: str,
    admin: ConsoleAdmin,
    session: SessionDep,
    settings: SettingsDep,
    back: Annotated[str, Form()] = "",
) -> Response:
    """启用 a suspended account."""
    action = service.resume_user(session, admin, user_id)
    return await _row_action(request, settings, session, admin, back, user_id, action, "resumed")


@router.post("/staff/{user_id}/reset-password")
async def reset_staff_password(
    request: Request,
    user_id: str,
    admin: ConsoleAdmin,
    session: SessionDep,
    settings: SettingsDep,
    password: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "",
) -> Response:
    """重置密码: the account's earlier sessions stop."""
    query = _back(back)
    try:
        body = PasswordResetIn(password=password)
    except ValidationError as invalid:
        detail = validation_details(list(invalid.errors()))[0]
        message = _field_message(detail | {"field": "password"}, label="新密码")
        refused = ActionError(user_id, message, "password")
        return await _list_page(
            request, settings, session, admin, query, error=refused, status_code=400
        )
    action = service.reset_password(session, admin, user_id, body.password)
    return await _row_action(request, settings, session, admin, back, user_id, action, "password")


@router.post("/staff/{user_id}/unbind-wechat")
async def unbind_staff_wechat(
    request: Request,
    user_id: str,
    admin: ConsoleAdmin,
    session: SessionDep,
    settings: SettingsDep,
    back: Annotated[str, Form()] = "",
) -> Response:
    """解除微信绑定: the account's next phone login binds the WeChat it comes from."""

    async def unbind() -> None:
        await service.unbind_openid(session, await service.get_user(session, user_id))

    return await _row_action(request, settings, session, admin, back, user_id, unbind(), "unbound")


async def _list_page(
    request: Request,
    settings: Settings,
    session: AsyncSession,
    admin: User,
    query: StaffQuery,
    *,
    error: ActionError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    filters = query.values
    users, total = await service.list_users(
        session,
        search=filters["search"] or None,
        role=filters["role"] or None,
        status=UserStatus(filters["status"]) if filters["status"] else None,
        offset=query.offset,
        limit=query.limit,
    )
    rows = [
        StaffRow(
            account=StaffAccountOut.of(user),
            phone=grouped_phone(user.phone),
            created=beijing(user.created_at),
            is_self=user.id == admin.id,
        )
        for user in users
    ]
    return render_page(
        request, settings, admin, "staff/list.html",
        active="staff", status_code=status_code,
        query=query, rows=rows, pager=query.pager(total), error=error,
        back=query.query(), roles=ROLE_CHOICES, statuses=STATUS_CHOICES,
    )  # fmt: skip


def _create_page(
    request: Request, settings: Settings, admin: User, form: CreateForm, *, status_code: int = 200
) -> HTMLResponse:
    return render_page(
        request, settings, admin, "staff/new.html",
        active="staff", status_code=status_code, form=form, roles=ROLE_CHOICES,
    )  # fmt: skip


async def _row_action(
    request: Request,
    settings: Settings,
    session: AsyncSession,
    admin: User,
    back: str,
    user_id: str,
    action: Awaitable[object],
    outcome: str,
) -> Response:
    """Run a row's action: back to the list it came from, saying DONE[`outcome`], or the list
    again with the service's refusal shown on the row it concerns."""
    query = _back(back)
    try:
        await action
    except AppError as refused:
        error = ActionError(user_id, refused.message)
        return await _list_page(
            request, settings, session, admin, query, error=error, status_code=refused.status_code
        )
    return done(request, query.url(), DONE[outcome])


def _back(back: str) -> StaffQuery:
    """The list an action came from: only its filters are read, never a path."""
    return StaffQuery.of(dict(parse_qsl(back.lstrip("?"))))


def _place(form: CreateForm, refused: AppError) -> None:
    """Put the service's refusal beside the field it names, else above the form."""
    for detail in refused.details if isinstance(refused.details, list) else []:
        if detail.get("field") in CREATE_LABELS:
            form.errors.setdefault(detail["field"], refused.message)
            return
    # A taken username or phone: the service's message begins with the field's label.
    for name in ("username", "phone"):
        if refused.message.startswith(CREATE_LABELS[name]):
            form.errors[name] = refused.message
            return
    form.message = refused.message


def _field_message(detail: Mapping[str, str], *, label: str | None = None) -> str:
    label = label or CREATE_LABELS.get(detail["field"], "")
    message = detail["message"]
    if message in {"该字段为必填项", "长度不能少于1个字符"}:
        return f"请填写{label}"
    if detail["field"] == "role":
        return "请选择角色"
    return f"{label}{message}"
