"""What the frame around every page shows: the menu for the user's role, the top bar."""

from __future__ import annotations

from dataclasses import dataclass

from wxcrm.users.models import Role, User
from wxcrm.users.schemas import ROLE_LABELS, wire_role

COMPANY_NAME = "家政服务客户管理系统"
EVERYONE = frozenset(Role)
MANAGERS = frozenset({Role.manager, Role.admin})
ADMINS = frozenset({Role.admin})


@dataclass(frozen=True)
class MenuItem:
    key: str
    label: str
    href: str
    roles: frozenset[Role]


MENU = (
    MenuItem("home", "首页", "/", EVERYONE),
    MenuItem("customers", "客户", "/customers", EVERYONE),
    MenuItem("pool", "公海", "/pool", EVERYONE),
    MenuItem("transfer", "导入导出", "/import", MANAGERS),
    MenuItem("notifications", "通知", "/notifications", EVERYONE),
    MenuItem("staff", "员工", "/staff", ADMINS),
    MenuItem("settings", "设置", "/settings", ADMINS),
)


@dataclass(frozen=True)
class Frame:
    company: str
    user_name: str
    role_label: str
    menu: tuple[MenuItem, ...]
    active: str
    csrf: str
    # The message of the action that led here (a toast), if any.
    flash: str | None = None


def frame_for(user: User, *, active: str, csrf: str, flash: str | None = None) -> Frame:
    role = Role(user.role)
    return Frame(
        company=COMPANY_NAME,
        user_name=user.name,
        role_label=ROLE_LABELS[wire_role(user.role)],
        menu=tuple(item for item in MENU if role in item.roles),
        active=active,
        csrf=csrf,
        flash=flash,
    )
