"""`wxcrm demo`: the API, its delivery worker and the WeChat simulator in one process, the
WeChat client pointed at the simulator, and demo data seeded once (README: Try it).

The simulator keeps its state in memory, so every start grants it again the subscription
credits our ledger holds: the two agree on how many messages each advisor may still get.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

import structlog
import typer
import uvicorn
from sqlalchemy import delete, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from wxcrm.app import create_app
from wxcrm.core.db import Database
from wxcrm.core.ids import new_id
from wxcrm.core.logging import configure_logging
from wxcrm.core.migrations import migrate
from wxcrm.core.models import utcnow
from wxcrm.core.phones import normalize_phone
from wxcrm.core.settings import Settings
from wxcrm.customers.leads import DEFAULT_CONTRACT_STATUS, new_customer_number
from wxcrm.customers.models import AssignmentHistory, Customer, FollowUp
from wxcrm.notifications.models import AdvisorSubscription
from wxcrm.notifications.subscriptions import grant_credits
from wxcrm.users import service as users_service
from wxcrm.users.models import Role, User
from wxcrm.users.repository import UserRepository
from wxcrm.wechat.models import WeChatToken
from wxcrm.wechat.sim import DEFAULT_APP_ID, DEFAULT_APP_SECRET, SimControl, SimServer

log = structlog.get_logger(__name__)

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin123456"
ADMIN_NAME = "管理员"
ADMIN_PHONE = "13857100000"
ADMIN_DEPARTMENT = "总经办"
ADVISOR_DEPARTMENT = "销售部"
ADVISOR_PASSWORD = "advisor123456"
ACTION_TEMPLATE = "demo-tmpl-customer-action"
ASSIGNED_TEMPLATE = "demo-tmpl-customer-assigned"
CLOUD_ENV = "demo-cloud-env"
# Sends each advisor may receive per template, as if it had tapped "accept" this often.
CREDITS = 50
CUSTOMERS = 50
IN_POOL = 12
SEED = 20240601  # the same names, phones and spread on every machine
_POOL_STEP = CUSTOMERS // IN_POOL  # every fourth customer is in the pool


@dataclass(frozen=True)
class DemoAdvisor:
    username: str
    name: str
    openid: str
    phone: str


ADVISORS = (
    DemoAdvisor("advisor1", "王芳", "o-demo-advisor1", "13857100001"),
    DemoAdvisor("advisor2", "李娜", "o-demo-advisor2", "13857100002"),
    DemoAdvisor("advisor3", "张敏", "o-demo-advisor3", "13857100003"),
)


def demo_settings(sim_url: str) -> Settings:
    """The settings of the demo: the simulator and its templates, unless the environment
    (or `.env`) sets a value itself."""
    configured = Settings()
    defaults: dict[str, Any] = {
        "wechat_api_base": sim_url,
        "wechat_app_id": DEFAULT_APP_ID,
        "wechat_app_secret": DEFAULT_APP_SECRET,
        "wechat_template_customer_action": ACTION_TEMPLATE,
        "wechat_template_customer_assigned": ASSIGNED_TEMPLATE,
        "miniprogram_cloud_env": CLOUD_ENV,
        "log_format": "console",  # a person reads this terminal
    }
    missing = {
        name: value for name, value in defaults.items() if name not in configured.model_fields_set
    }
    return Settings(**missing) if missing else configured


# -- the demo data ------------------------------------------------------------------------------

_SURNAMES = "王李张刘陈杨黄赵周吴徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾沈"
_GIVEN_NAMES = (
    "丽 静 敏 婷 秀英 桂英 晓燕 雪梅 海燕 建华 志强 伟 磊 洋 勇 军 杰 涛 明 超"
    " 欣怡 子涵 雨涵 思远 浩然 佳琪 梦瑶 晨曦 嘉怡 文博 玉兰 春梅 红霞 丹 颖"
).split()
_MOBILE_PREFIXES = (
    "130 131 132 133 135 136 137 138 139 150 151 152 153 155 156 157 158 159"
    " 166 170 173 176 177 180 181 182 183 185 186 187 188 189 191 198 199"
).split()
_ADDRESSES = (
    "杭州市西湖区文三路",
    "杭州市拱墅区莫干山路",
    "杭州市上城区解放路",
    "杭州市滨江区江南大道",
    "杭州市余杭区文一西路",
    "杭州市萧山区市心中路",
    "杭州市临平区迎宾路",
    "杭州市钱塘区学源街",
)
_REMARKS = {
    "月嫂": "预产期在下个月，想找有经验的月嫂",
    "住家育儿嫂": "孩子一岁半，希望阿姨住家带娃",
    "保洁": "每周两次深度保洁，三室两厅",
    "住家保姆": "要求会做杭帮菜，家里四口人",
    "养宠": "家里有两只猫，出差期间每天上门喂养",
    "小时工": "周末上门，每次三小时",
    "白班育儿": "双职工，工作日白天带孩子",
    "白班保姆": "做午饭和晚饭，兼顾家务",
    "住家护老": "老人行动不便，需要住家照护",
    "家教": "初二数学，每周两次",
    "陪伴师": "孩子五岁，放学后陪伴和接送",
}
_FOLLOW_UPS = (
    ("电话", "电话沟通需求，客户希望下周面试阿姨"),
    ("微信", "已发送三位阿姨的简历，等客户挑选"),
    ("电话", "客户在比较价格，约定周五再联系"),
    ("面谈", "到店面谈，确认了服务时间和地址"),
    ("微信", "客户确认了预算，正在匹配合适的阿姨"),
)


def _names(rng: random.Random, count: int) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        surname = rng.choice(_SURNAMES)
        # Leads from platforms often come with only a surname.
        name = (
            surname + rng.choice(("女士", "先生"))
            if rng.random() < 0.15
            else surname + rng.choice(_GIVEN_NAMES)
        )
        if name not in names:
            names.append(name)
    return names


def _phones(rng: random.Random, count: int) -> list[str]:
    phones: list[str] = []
    while len(phones) < count:
        phone = normalize_phone(f"{rng.choice(_MOBILE_PREFIXES)}{rng.randrange(10**8):08d}")
        if phone is not None and phone not in phones:
            phones.append(phone)
    return phones


@dataclass
class _Rows:
    customers: list[Customer] = field(default_factory=list)
    follow_ups: list[FollowUp] = field(default_factory=list)
    history: list[AssignmentHistory] = field(default_factory=list)


def demo_customers(
    settings: Settings, admin: User, advisors: Sequence[User], now: datetime
) -> _Rows:
    """Fifty customers: some in the public pool, the rest spread over the advisors, each
    owned one with its assignment and a recent follow-up (so none is due for recycling)."""
    rng = random.Random(SEED)
    rows = _Rows()
    pool_statuses = [
        status
        for status in settings.contract_statuses
        if status not in settings.pool_protected_statuses
    ] or [DEFAULT_CONTRACT_STATUS]
    names, phones = _names(rng, CUSTOMERS), _phones(rng, CUSTOMERS)
    for index, (name, phone) in enumerate(zip(names, phones, strict=True)):
        category = rng.choice(settings.service_categories)
        in_pool = index % _POOL_STEP == 0 and index < _POOL_STEP * IN_POOL
        created_at = now - timedelta(days=rng.uniform(10 if in_pool else 2, 60))
        customer = Customer(
            id=new_id(),
            customer_no=new_customer_number(),
            name=name,
            phone=phone,
            lead_source=rng.choice(settings.lead_sources),
            service_category=category,
            contract_status=rng.choice(pool_statuses if in_pool else settings.contract_statuses),
            lead_level=rng.choice(settings.lead_levels) if settings.lead_levels else None,
            address=f"{rng.choice(_ADDRESSES)}{rng.randint(1, 999)}号",
            remark=_REMARKS.get(category) if rng.random() < 0.7 else None,
            created_by_id=admin.id,
            created_at=created_at,
            updated_at=created_at,
        )
        rows.customers.append(customer)
        if in_pool:
            customer.pool_entered_at = now - timedelta(days=rng.uniform(0.5, 8))
            customer.updated_at = customer.pool_entered_at
            continue
        advisor = advisors[index % len(advisors)]
        assigned_at = created_at + timedelta(minutes=rng.randint(5, 600))
        followed_at = max(now - timedelta(hours=rng.uniform(1, 96)), assigned_at)
        method, content = rng.choice(_FOLLOW_UPS)
        customer.owner_id = advisor.id
        customer.assigned_at = assigned_at
        customer.assigned_by_id = admin.id
        customer.assignment_reason = "新线索分配"
        customer.last_follow_up_at = followed_at
        customer.updated_at = followed_at
        rows.history.append(
            AssignmentHistory(
                customer_id=customer.id,
                to_user_id=advisor.id,
                by_user_id=admin.id,
                reason="新线索分配",
                channel="console",
                created_at=assigned_at,
            )
        )
        rows.follow_ups.append(
            FollowUp(
                customer_id=customer.id,
                user_id=advisor.id,
                method=method,
                content=content,
                next_follow_up_at=now + timedelta(days=rng.randint(1, 7)),
                created_at=followed_at,
            )
        )
    return rows


async def seed_once(session: AsyncSession, settings: Settings) -> bool:
    """Seed the demo data unless the admin exists; True when it seeded now."""
    if await UserRepository(session).by_username(ADMIN_USERNAME) is not None:
        return False
    now = utcnow()
    admin = await users_service.create_user(
        session,
        username=ADMIN_USERNAME,
        password=ADMIN_PASSWORD,
        role=Role.admin,
        name=ADMIN_NAME,
        phone=ADMIN_PHONE,
        department=ADMIN_DEPARTMENT,
    )
    advisors = []
    for demo in ADVISORS:
        advisor = await users_service.create_user(
            session,
            username=demo.username,
            password=ADVISOR_PASSWORD,
            role=Role.advisor,
            name=demo.name,
            phone=demo.phone,
            department=ADVISOR_DEPARTMENT,
        )
        # As if the advisor had logged in from the mini program once.
        await users_service.bind_openid(session, advisor, demo.openid)
        advisors.append(advisor)
        for template_id in (
            settings.wechat_template_customer_action,
            settings.wechat_template_customer_assigned,
        ):
            await grant_credits(
                session,
                advisor_id=advisor.id,
                openid=demo.openid,
                template_id=template_id,
                credits=CREDITS,
                data={"source": "demo", "subscriptionStatus": "accept"},
                at=now,
            )
    rows = demo_customers(settings, admin, advisors, now)
    session.add_all(rows.customers)
    await session.flush()  # the customers before the rows that point at them
    session.add_all([*rows.history, *rows.follow_ups])
    await session.flush()
    return True


# -- start-up -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoState:
    seeded_now: bool
    customers: int
    in_pool: int
    admin: User | None
    advisors: list[User]


async def prepare(settings: Settings, sim_url: str) -> DemoState:
    """Migrate, seed once, and give the (fresh) simulator what it must know at every start."""
    database = Database.from_settings(settings)
    try:
        await migrate(database.engine)
        settings.signing_key()
        async with database.writer() as session:
            seeded_now = await seed_once(session, settings)
            if settings.wechat_api_base.rstrip("/") == sim_url:
                # A token the previous simulator issued means nothing to this one.
                await session.execute(
                    delete(WeChatToken).where(WeChatToken.app_id == settings.wechat_app_id)
                )
            await session.commit()
        async with database.reader() as session:
            customers = await session.scalar(select(func.count()).select_from(Customer))
            in_pool = await session.scalar(
                select(func.count()).select_from(Customer).where(Customer.owner_id.is_(None))
            )
            admin = await UserRepository(session).by_username(ADMIN_USERNAME)
            advisors = list(
                await session.scalars(
                    select(User)
                    .where(User.username.in_([demo.username for demo in ADVISORS]))
                    .order_by(User.username)
                )
            )
            credits = (
                await session.execute(
                    select(
                        User.openid, AdvisorSubscription.template_id, AdvisorSubscription.credits
                    )
                    .join(User, User.id == AdvisorSubscription.advisor_id)
                    .where(User.openid.is_not(None), AdvisorSubscription.credits > 0)
                )
            ).all()
        async with SimControl(sim_url) as control:
            for openid, template_id, count in credits:
                await control.grant(str(openid), template_id, count)
    finally:
        await database.dispose()
    return DemoState(seeded_now, customers or 0, in_pool or 0, admin, advisors)


def banner(settings: Settings, api_url: str, sim_url: str, state: DemoState) -> str:
    database = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    fresh = f", rm -rf {settings.data_dir} starts afresh" if not settings.database_url else ""
    data = (
        f"seeded now: {state.customers} customers, {state.in_pool} in the public pool"
        if state.seeded_now
        else f"{state.customers} customers, {state.in_pool} in the public pool;"
        f" demo data of an earlier run{fresh}"
    )
    channel_note = (
        f"assignments notify through the cloud function {settings.wechat_cloud_function}"
        if settings.notify_channel == "cloud"
        else "assignments notify directly; NOTIFY_CHANNEL=cloud: through the cloud function"
    )
    shown_secret = settings.wechat_app_secret.get_secret_value() == DEFAULT_APP_SECRET
    secret = f", secret {DEFAULT_APP_SECRET}" if shown_secret else ""  # never a real one
    lines = [
        "",
        "wxcrm demo is running; Ctrl-C stops it.",
        "",
        f"  staff console     {api_url}/  (sign in with a login below)",
        f"  API               {api_url}/api/health",
        f"  API docs          {api_url}/docs",
        f"  WeChat simulator  {sim_url}  (AppID {settings.wechat_app_id}{secret};"
        f" {sim_url}/sim/docs)",
        f"  messages sent     {sim_url}/sim/messages",
        f"  cloud functions   {sim_url}/sim/invocations  ({channel_note})",
        f"  database          {database}  ({data})",
        "",
        "Logins (the console; POST /api/auth/login; the staff mini program:"
        " /api/auth/miniprogram-login):",
        f"  {'username':<9} {'password':<14} {'phone':<11} name",
    ]
    if state.admin is not None:
        lines.append(
            f"  {ADMIN_USERNAME:<9} {ADMIN_PASSWORD:<14} {state.admin.phone or '-':<11}"
            f" {state.admin.name}"
        )
    for advisor in state.advisors:
        lines.append(
            f"  {advisor.username:<9} {ADVISOR_PASSWORD:<14} {advisor.phone or '-':<11}"
            f" {advisor.name}  _id {advisor.id}  openid {advisor.openid or '-'}"
        )
    if state.advisors:
        first = state.advisors[0]
        lines += [
            "",
            f'Try it: README.md, "## Try it". {first.name} ({first.username}) has'
            f" _id {first.id}; its messages: {sim_url}/sim/messages?touser={first.openid}",
        ]
    lines.append("")
    return "\n".join(lines)


class _Stop:
    """SIGINT/SIGTERM before and after uvicorn handles them itself: stop, don't die."""

    def __init__(self) -> None:
        self.requested = False
        self.server: uvicorn.Server | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True


def _listen(host: str, port: int) -> socket.socket:
    """The API's socket, bound before anything else starts: a busy port stops the demo at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, as in SimServer: asyncio then sets TCP_NODELAY on its connections.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def _serve(
    settings: Settings, sock: socket.socket, api_url: str, sim_url: str, stop: _Stop
) -> int:
    state = await prepare(settings, sim_url)
    if stop.requested:
        return 0
    app = create_app(settings, run_migrations=False)  # prepare() has just migrated
    server = stop.server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, server_header=False)
    )

    async def serve() -> int:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exit_:  # how uvicorn reports a failed start-up
            return exit_.code if isinstance(exit_.code, int) else 1
        return 0

    serving = asyncio.create_task(serve())
    while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no event)
        await asyncio.sleep(0.02)
    if server.started and not server.should_exit:
        typer.echo(banner(settings, api_url, sim_url, state))
    return await serving


def run_demo(*, host: str, port: int, sim_port: int) -> None:
    """Run the demo until SIGINT or SIGTERM; every part stops cleanly."""
    stop = _Stop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    sim = SimServer(host="127.0.0.1", port=sim_port)
    try:
        sock = _listen(host, port)
    except OSError as error:
        typer.echo(f"error: the API cannot listen on {host}:{port}: {error}", err=True)
        raise typer.Exit(1) from error
    try:
        try:
            sim.start()
        except OSError as error:
            typer.echo(
                f"error: the WeChat simulator cannot listen on port {sim_port}: {error}", err=True
            )
            raise typer.Exit(1) from error
        settings = demo_settings(sim.base_url)
        configure_logging(settings.log_level, settings.log_format)
        if settings.wechat_api_base.rstrip("/") == sim.base_url:
            # The simulator accepts the app the client is configured with.
            sim.state.app_id = settings.wechat_app_id
            sim.state.app_secret = settings.wechat_app_secret.get_secret_value()
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        api_url = (
            f"http://[{shown_host}]:{port}" if ":" in shown_host else f"http://{shown_host}:{port}"
        )
        code = asyncio.run(_serve(settings, sock, api_url, sim.base_url, stop))
    finally:
        sim.stop()
        sock.close()
    log.info("demo stopped")
    if code:
        raise typer.Exit(code)
