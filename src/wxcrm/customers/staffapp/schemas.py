"""Wire shapes of the staff mini program's customer endpoints, as the deployed mini program
reads and sends them: the envelope with its refusals, the list's query, the customer form,
follow-ups, releases, and each answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from wxcrm.core.clock import SHANGHAI
from wxcrm.core.envelope import now_ms
from wxcrm.core.ids import is_object_id
from wxcrm.core.phones import normalize_phone
from wxcrm.core.types import in_date_range
from wxcrm.customers.assignment.schemas import AssignNotificationData
from wxcrm.customers.needs import HouseholdIn, day_in_beijing
from wxcrm.customers.records.filters import FollowUpStatus, LeadStatus
from wxcrm.customers.records.schemas import FollowUpMethod
from wxcrm.customers.schemas import CustomerOut, InModel, OutModel
from wxcrm.customers.staffapp.refusals import Refused
from wxcrm.users.models import User
from wxcrm.users.schemas import wire_role

T = TypeVar("T")

MAX_PAGE_SIZE = 100
# Past any page a list of customers has; a larger one would overflow the database's offset.
MAX_PAGE = 100_000
MAX_FOLLOW_UP = 1000
MAX_REASON = 200


class StaffEnvelope(BaseModel, Generic[T]):
    """`{success, message, data, timestamp}`; a refused operation has the same status with
    `success: false`, `data: null` and `error`."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    success: bool
    message: str = Field(description="给用户看的中文说明")
    data: T | None = Field(description="成功时的数据；被拒绝时为 null")
    error: str | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="仅在 success 为 false 时出现：FORBIDDEN、DUPLICATE_PHONE、DUPLICATE_WECHAT、"
        "MISSING_CONTACT，或失败原因的中文说明",
    )
    timestamp: int = Field(default_factory=now_ms, description="服务器时间，Unix 毫秒")

    @classmethod
    def of(cls, data: T, message: str) -> Self:
        return cls(success=True, message=message, data=data)

    @classmethod
    def refusal(cls, refused: Refused) -> Self:
        return cls(success=False, message=refused.message, data=None, error=refused.error)


# -- input helpers ----------------------------------------------------------------------------


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


BlankIsNone = BeforeValidator(_blank_to_none)


def _required(message: str) -> Any:
    """Null or blank (or missing: `_SaysWhatIsMissing`): refused with the original's words."""

    def check(value: Any) -> Any:
        if _blank_to_none(value) is None:
            raise ValueError(message)
        return value

    return BeforeValidator(check)


def _text(label: str, max_length: int) -> Any:
    def check(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"{label}必须是文本")
        if len(value.strip()) > max_length:
            raise ValueError(f"{label}不能超过{max_length}个字符")
        return value

    return BeforeValidator(check)


class _SaysWhatIsMissing(BaseModel):
    """A body whose `REQUIRED` fields, when missing, are refused in their own words (客户姓名
    不能为空) rather than the generic ones: they are read as sent empty."""

    REQUIRED: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _missing_as_empty(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        missing: dict[str, None] = {}
        for name in cls.REQUIRED:
            alias = cls.model_fields[name].alias or name
            if alias not in data and name not in data:
                missing[alias] = None
        return {**data, **missing}


def _phone(value: Any) -> Any:
    value = _blank_to_none(value)
    if value is None:
        return None
    phone = normalize_phone(value) if isinstance(value, str) else None
    if phone is None:
        raise ValueError("请输入有效的中国手机号码")
    return phone


def _user_id(value: Any) -> Any:
    value = _blank_to_none(value)
    if value is not None and not is_object_id(value):
        raise ValueError("负责人ID格式不正确")
    return value


def _day(message: str) -> Callable[[Any], Any]:
    """A date, or a time (read as its day in Beijing): what the mini program's pickers send."""
    return lambda value: day_in_beijing(value, message)


def _moment(text: str) -> date | datetime:
    """A day (2024-05-01) as a date; an ISO time as an aware time (Beijing's if it has no
    offset)."""
    if len(text) == 10:
        return date.fromisoformat(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


# -- the list's query (also the statistics') ------------------------------------------------


class SortBy(StrEnum):
    """The original's four sorts (the console's `SortField` also sorts by last follow-up)."""

    created_at = "createdAt"
    updated_at = "updatedAt"
    name = "name"
    phone = "phone"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"


def _whole_number(default: int, low: int, high: int | None, label: str) -> Callable[[Any], Any]:
    # The original reads a page or limit that is no number as its default.
    def read(value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                return default
        if isinstance(value, int) and value < low:
            raise ValueError(f"{label}不能小于{low}")
        if isinstance(value, int) and high is not None and value > high:
            raise ValueError(f"{label}不能超过{high}")
        return value

    return read


def _one_of(
    choices: type[StrEnum], message: str, default: StrEnum | None = None
) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        value = _blank_to_none(value)
        if value is None:
            return default
        if not isinstance(value, str) or value not in {choice.value for choice in choices}:
            raise ValueError(message)
        return value

    return check


def _query_text(value: Any) -> Any:
    value = _blank_to_none(value)
    if isinstance(value, str) and len(value) > 64:
        raise ValueError("不能超过64个字符")
    return value


QueryText = Annotated[str | None, BeforeValidator(_query_text)]
QueryDay = Annotated[date | None, BeforeValidator(_day("日期格式不正确"))]


class StaffListQuery(BaseModel):
    """The list's (and the statistics') query parameters. An empty one counts as not sent."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    page: Annotated[int, BeforeValidator(_whole_number(1, 1, MAX_PAGE, "页码"))] = Field(
        1, description="页码，从 1 开始"
    )
    limit: Annotated[int, BeforeValidator(_whole_number(10, 1, MAX_PAGE_SIZE, "每页条数"))] = Field(
        10, description=f"每页条数，最多 {MAX_PAGE_SIZE}"
    )
    sort_by: Annotated[
        SortBy,
        BeforeValidator(
            _one_of(
                SortBy, "排序字段必须是：createdAt、updatedAt、name、phone之一", SortBy.created_at
            )
        ),
    ] = Field(SortBy.created_at, alias="sortBy")
    sort_order: Annotated[
        SortOrder, BeforeValidator(_one_of(SortOrder, "排序方向必须是：asc或desc", SortOrder.desc))
    ] = Field(SortOrder.desc, alias="sortOrder")
    search: QueryText = Field(None, description="姓名、手机号、微信号或客户编号中含有的文字")
    name: QueryText = None
    phone: QueryText = None
    lead_source: QueryText = Field(None, alias="leadSource")
    service_category: QueryText = Field(None, alias="serviceCategory")
    contract_status: QueryText = Field(
        None, alias="contractStatus", description="不传时不含流失客户（有 search 时也含）"
    )
    lead_level: QueryText = Field(None, alias="leadLevel")
    lead_status: Annotated[
        LeadStatus | None,
        BeforeValidator(_one_of(LeadStatus, "流转状态必须是：已流转、未流转之一")),
    ] = Field(None, alias="leadStatus")
    follow_up_status: Annotated[
        FollowUpStatus | None,
        BeforeValidator(
            _one_of(FollowUpStatus, "跟进状态必须是：新客未跟进、流转未跟进、已跟进之一")
        ),
    ] = Field(None, alias="followUpStatus")
    assigned_to: Annotated[str | None, BeforeValidator(_user_id)] = Field(
        None, alias="assignedTo", description="负责人 _id（顾问：总是本人）"
    )
    created_start_date: QueryDay = Field(None, alias="createdStartDate")
    created_end_date: QueryDay = Field(None, alias="createdEndDate")
    assigned_start_date: QueryDay = Field(None, alias="assignedStartDate")
    assigned_end_date: QueryDay = Field(None, alias="assignedEndDate")
    # Accepted as the original's query is, and ignored: customers have no caregiver.
    caregiver_name: QueryText = Field(None, alias="caregiverName", description="不起作用")
    caregiver_phone: QueryText = Field(None, alias="caregiverPhone", description="不起作用")


# -- the customer form ------------------------------------------------------------------------


class CustomerFieldsIn(HouseholdIn):
    """The customer form, every field optional (PATCH). `notes` is `remarks` and
    `serviceType` is `serviceCategory` when those are not given."""

    name: Annotated[str | None, _required("客户姓名不能为空"), _text("客户姓名", 64)] = None
    phone: Annotated[str | None, BeforeValidator(_phone)] = Field(
        None, description="中国大陆手机号；与微信号至少填一个"
    )
    wechat_id: Annotated[str | None, BlankIsNone, _text("微信号", 64)] = None
    lead_source: Annotated[str | None, _required("线索来源不能为空")] = Field(None, max_length=32)
    service_category: Annotated[str | None, BlankIsNone] = Field(None, max_length=32)
    service_type: Annotated[str | None, BlankIsNone] = Field(
        None, max_length=32, description="serviceCategory 的旧名"
    )
    contract_status: Annotated[str | None, _required("签约状态不能为空")] = Field(
        None, max_length=16
    )
    lead_level: Annotated[str | None, _required("线索等级不能为空")] = Field(
        None, max_length=8, description="O类 只有管理员和经理可以设置"
    )
    address: Annotated[str | None, _text("地址", 255)] = None
    remarks: Annotated[str | None, _text("备注", 2000)] = None
    notes: Annotated[str | None, _text("备注", 2000)] = Field(None, description="remarks 的旧名")
    assigned_to: Annotated[str | None, BeforeValidator(_user_id)] = Field(
        None, description="负责人 _id（顾问只能填自己）"
    )
    assignment_reason: Annotated[str | None, _text("分配原因", MAX_REASON)] = None


class CustomerCreateIn(_SaysWhatIsMissing, CustomerFieldsIn):
    """A new customer: name, lead source, contract status, lead level, and a phone or a
    WeChat id."""

    REQUIRED = ("name", "lead_source", "contract_status", "lead_level")

    name: Annotated[str, _required("客户姓名不能为空"), _text("客户姓名", 64)]
    lead_source: Annotated[str, _required("线索来源不能为空")] = Field(max_length=32)
    contract_status: Annotated[str, _required("签约状态不能为空")] = Field(max_length=16)
    lead_level: Annotated[str, _required("线索等级不能为空")] = Field(
        max_length=8, description="O类 只有管理员和经理可以设置"
    )


# -- follow-ups, releases ---------------------------------------------------------------------


class FollowUpType(StrEnum):
    phone = "phone"
    wechat = "wechat"
    visit = "visit"
    other = "other"


# How each way of contact is stored (the console's words).
STORED_METHOD = {
    FollowUpType.phone: FollowUpMethod.phone,
    FollowUpType.wechat: FollowUpMethod.wechat,
    FollowUpType.visit: FollowUpMethod.meeting,
    FollowUpType.other: FollowUpMethod.other,
}
WIRE_TYPE = {method.value: wire for wire, method in STORED_METHOD.items()}


def _content(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("跟进内容不能为空")
    if not isinstance(value, str):
        raise ValueError("跟进内容必须是字符串")
    if len(value.strip()) > MAX_FOLLOW_UP:
        raise ValueError(f"跟进内容不能超过{MAX_FOLLOW_UP}个字符")
    return value


def _next_follow_up(value: Any) -> Any:
    value = _blank_to_none(value)
    if value is None or isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError("下次跟进时间格式不正确")
    try:
        moment = _moment(value.strip())
        return in_date_range(moment)
    except ValueError:
        raise ValueError("下次跟进时间格式不正确") from None


class StaffFollowUpIn(_SaysWhatIsMissing, InModel):
    REQUIRED = ("type", "content")

    type: Annotated[
        FollowUpType,
        _required("跟进方式不能为空"),
        BeforeValidator(_one_of(FollowUpType, "跟进方式必须是有效值")),
    ] = Field(description="phone、wechat、visit、other")
    content: Annotated[str, BeforeValidator(_content)] = Field(max_length=MAX_FOLLOW_UP)
    next_follow_up_date: Annotated[datetime | date | None, BeforeValidator(_next_follow_up)] = (
        Field(None, alias="nextFollowUpDate", description="下次跟进时间：日期或 ISO 时间")
    )


def _reason(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("释放原因不能为空")
    if not isinstance(value, str):
        raise ValueError("释放原因必须是文本")
    if len(value.strip()) > MAX_REASON:
        raise ValueError(f"释放原因不能超过{MAX_REASON}个字符")
    return value


class StaffReleaseIn(_SaysWhatIsMissing, InModel):
    REQUIRED = ("reason",)

    reason: Annotated[str, BeforeValidator(_reason)] = Field(
        max_length=MAX_REASON, description="释放原因"
    )


# -- answers ----------------------------------------------------------------------------------


class UserRef(OutModel):
    id: str = Field(alias="_id")
    name: str
    username: str


class UserName(OutModel):
    name: str
    username: str


FOLLOW_UP_STATUS = "跟进状态：新客未跟进、流转未跟进、已跟进；已签约或 O类 为 null"


class StaffCustomerOut(CustomerOut):
    """A customer as the staff mini program shows it: the whole record, to whoever may see
    it. (The original masked the phone of a customer an advisor did not own, in the answers
    where an advisor gave a customer away; here an advisor cannot, so no answer needs it.)"""

    assigned_to_user: UserName | None
    follow_up_status: str | None = Field(description=FOLLOW_UP_STATUS)


class StaffListItemOut(StaffCustomerOut):
    """A row of the list: the owner spelled out."""

    assigned_to: UserRef | None = Field(description="负责人；在公海中为 null")  # type: ignore[assignment]


class StaffCustomerPage(OutModel):
    customers: list[StaffListItemOut]
    total: int
    page: int
    limit: int
    total_pages: int
    has_more: bool


class FollowUpItemOut(OutModel):
    """A follow-up (跟进记录), its author spelled out."""

    id: str = Field(alias="_id")
    customer_id: str = Field(description="客户记录 _id")
    type: FollowUpType
    content: str
    created_by: UserRef | None
    next_follow_up_date: datetime | None
    created_at: datetime
    updated_at: datetime = Field(description="跟进记录不可修改：同 createdAt")


class CreatedFollowUpOut(FollowUpItemOut):
    created_by: str = Field(description="记录人 _id")  # type: ignore[assignment]


class StaffCustomerDetailOut(StaffCustomerOut):
    """One customer with the people it names and its follow-ups, newest first."""

    created_by_name: str
    assigned_to_name: str
    assigned_by_name: str
    created_by_user: UserName | None
    assigned_by_user: UserName | None
    last_updated_by_user: UserName | None
    follow_ups: list[FollowUpItemOut] = Field(description="最近的跟进记录，新的在前")


class CreatedCustomerOut(OutModel):
    id: str = Field(description="客户记录 _id")
    customer_id: str = Field(description="客户编号")
    created_at: datetime
    customer: StaffCustomerOut
    action: Literal["CREATED"] = "CREATED"


class StaffAssignedOut(StaffCustomerOut):
    """The customer as now assigned (`customerId` is its number), with the notification's
    data (null when the customer already was the advisor's)."""

    notification_data: AssignNotificationData | None


class ManagerStatisticsOut(OutModel):
    total: int
    by_contract_status: dict[str, int] = Field(description="键为 null：没有该字段的客户")
    by_lead_source: dict[str, int]
    by_service_category: dict[str, int]


class AdvisorStatisticsOut(OutModel):
    total: int
    my_customers: int
    by_contract_status: dict[str, int]


class TodayTodoOut(OutModel):
    total_leads: int
    month_assigned: int
    today_assigned: int
    pending_leads: int = Field(description="从未跟进的客户")
    today_signed: int = Field(description="今天成为已签约的客户")
    follow_ups_due_today: int = Field(description="下次跟进时间在今天的跟进记录")
    is_admin: bool = Field(description="管理员、经理：全部客户；顾问：本人的")


class AssignmentLogOut(OutModel):
    id: str = Field(alias="_id")
    customer_id: str
    old_assigned_to: UserRef | None
    new_assigned_to: UserRef | None = Field(description="释放到公海时为 null")
    assigned_by: UserRef | None = Field(description="系统自动回收时为 null")
    assigned_at: datetime
    reason: str | None
    action: Literal["assign", "release"]
    created_at: datetime
    updated_at: datetime
    old_assigned_to_user: UserRef | None
    new_assigned_to_user: UserRef | None
    assigned_by_user: UserRef | None


class EmployeeOut(OutModel):
    id: str = Field(alias="_id")
    name: str
    role: str = Field(description="admin、manager、employee（顾问）")
    department: str
    phone: str
    email: str
    status: Literal["active", "inactive"]

    @classmethod
    def of(cls, user: User) -> Self:
        return cls.model_validate(
            {
                "_id": user.id,
                "name": user.name,
                "role": wire_role(user.role),
                "department": user.department or "未分配",
                "phone": user.phone or "",
                "email": "",  # we keep no email
                "status": "active" if user.is_active else "inactive",
            }
        )


class FollowUpStatusOut(OutModel):
    customer_id: str = Field(description="客户记录 _id")
    customer_name: str
    follow_up_status: str | None = Field(description=FOLLOW_UP_STATUS)
    transfer_count: int
    has_follow_up: bool
    current_owner_has_follow_up: bool
