"""系统设置 (admin, read-only): WeChat settings without secrets, templates, pool rules.

What the running app was configured with, for an admin checking a deployment. Every value
is picked here by name: a secret (the app secret, the signing key, the push token and key,
a password inside a URL) is never read into the page, only whether it is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import SecretStr

from wxcrm.console.notifications import VALUE_LABELS
from wxcrm.console.routing import console_router, render_page
from wxcrm.console.staff import admins_only
from wxcrm.core.deps import SettingsDep
from wxcrm.core.settings import Settings
from wxcrm.notifications.templates import TemplateName, template
from wxcrm.users.models import User
from wxcrm.wechat.tokens import REFRESH_MARGIN

ADMINS_ONLY = "只有系统管理员可以查看系统设置"
WECHAT_HOST = "api.weixin.qq.com"
TEMPLATE_LABELS = {
    TemplateName.customer_action: "客户动态（小程序中的客户行为、回收预警）",
    TemplateName.customer_assigned: "客户分配",
    TemplateName.follow_up_reminder: "每日跟进提醒",
}
STATES = {"developer": "开发版", "trial": "体验版", "formal": "正式版"}
CHANNELS = {"direct": "直接发送订阅消息", "cloud": "经云函数发送"}

router = console_router()


ConsoleAdmin = Annotated[User, Depends(admins_only(ADMINS_ONLY))]


@dataclass(frozen=True)
class Fact:
    label: str
    value: str
    note: str = ""


@dataclass(frozen=True)
class TemplateInfo:
    label: str
    template_id: str
    long_term: bool
    fields: list[tuple[str, str, str]]  # value name, its label, keyword key


@router.get("/settings")
async def system_settings(
    request: Request, admin: ConsoleAdmin, settings: SettingsDep
) -> HTMLResponse:
    """系统设置: read-only; changed through the environment (README: Configuration)."""
    return render_page(
        request, settings, admin, "system/settings.html", active="settings",
        wechat=_wechat(settings), templates=_templates(settings), pool=_pool(settings),
        channel=_channel(settings), limits=_limits(settings),
    )  # fmt: skip


def _is_set(secret: SecretStr) -> str:
    return "已配置" if secret.get_secret_value() else "未配置"


def _address(url: str) -> str:
    """A URL without whatever credentials it carries: scheme, host, port and path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    path = parts.path if parts.path not in ("", "/") else ""
    return f"{parts.scheme}://{host}{port}{path}" if parts.scheme else "（无效地址）"


def _wechat(settings: Settings) -> list[Fact]:
    real = urlsplit(settings.wechat_api_base).hostname == WECHAT_HOST
    return [
        Fact("AppID", settings.wechat_app_id),
        Fact("AppSecret", _is_set(settings.wechat_app_secret), "密钥本身不在页面中显示"),
        Fact(
            "接口地址",
            _address(settings.wechat_api_base),
            "微信正式接口" if real else "非微信正式接口（模拟器或代理）",
        ),
        Fact(
            "Access Token 缓存",
            "stable_token，存于数据库，各进程共享",
            f"每个 AppID 一行；剩余不足 {int(REFRESH_MARGIN.total_seconds())} 秒时由一个进程刷新",
        ),
        Fact("小程序版本", STATES.get(settings.miniprogram_state, settings.miniprogram_state)),
        Fact("消息语言", settings.wechat_lang),
        Fact("云开发环境", settings.miniprogram_cloud_env or "未配置"),
        Fact(
            "消息推送 Token", _is_set(settings.wechat_push_token), "已配置时订阅结果以微信推送为准"
        ),
        Fact(
            "消息推送 EncodingAESKey",
            _is_set(settings.wechat_push_aes_key),
            "已配置时只接受安全模式推送",
        ),
    ]


def _templates(settings: Settings) -> list[TemplateInfo]:
    infos = []
    for name in TemplateName:
        spec = template(settings, name)
        infos.append(
            TemplateInfo(
                label=TEMPLATE_LABELS[name],
                template_id=spec.template_id,
                long_term=spec.long_term,
                fields=[
                    (value, VALUE_LABELS.get(value, value), key)
                    for value, key in spec.fields.items()
                ],
            )
        )
    return infos


def _days(value: float) -> str:
    return f"{value:g} 天"


def _pool(settings: Settings) -> list[Fact]:
    return [
        Fact("每日认领上限", f"{settings.pool_daily_claim_limit} 个", "每位顾问每天从公海认领"),
        Fact("持有客户上限", f"{settings.pool_holding_cap} 个", "每位顾问名下客户"),
        Fact("回收期限", _days(settings.pool_recycle_after_days), "未跟进的客户超过期限回到公海"),
        Fact("回收预警", f"提前 {_days(settings.pool_recycle_warning_days)}", "提醒负责顾问"),
        Fact("冷却期", _days(settings.pool_cooling_days), "释放后原负责人不能立即认领"),
        Fact("不回收的签约状态", "、".join(settings.pool_protected_statuses) or "无"),
    ]


def _channel(settings: Settings) -> list[Fact]:
    channel = CHANNELS.get(settings.notify_channel, settings.notify_channel)
    if settings.notify_channel == "cloud":
        channel = f"{channel}（{settings.wechat_cloud_function}）"
    return [
        Fact("发送通道", channel),
        Fact(
            "发送进程",
            "随 API 进程运行" if settings.worker_embedded else "独立 worker 进程",
            "wxcrm worker 可另行启动多个",
        ),
        Fact("并发数", str(settings.worker_concurrency), "每个 worker 同时发送的条数"),
        Fact("轮询间隔", f"{settings.worker_poll_seconds:g} 秒"),
        Fact(
            "心跳 / 超时接管",
            f"{settings.worker_heartbeat_seconds:g} 秒 / {settings.worker_stale_seconds:g} 秒",
        ),
        Fact("最多尝试", f"{settings.outbox_max_attempts} 次", "临时错误按指数退避重试"),
        Fact(
            "重试间隔",
            f"{settings.outbox_retry_base_seconds:g} 秒起，"
            f"最长 {settings.outbox_retry_max_seconds:g} 秒",
        ),
        Fact(
            "合并窗口",
            f"{settings.notify_fold_window_minutes:g} 分钟",
            "同一客户对同一顾问的重复动态合并为一条",
        ),
        Fact("每日跟进提醒", settings.follow_up_reminder_time.strftime("%H:%M"), "北京时间"),
    ]


def _limits(settings: Settings) -> list[Fact]:
    storage = urlsplit(settings.rate_limit_storage_url).scheme or "memory"
    return [
        Fact("限流", "开启" if settings.rate_limit_enabled else "关闭"),
        Fact("计数存储", storage, "memory 仅在单个进程内计数；redis 在各进程间共享"),
        Fact("登录失败（每个用户名）", settings.rate_limit_login_failures_per_username),
        Fact("登录失败（每个 IP）", settings.rate_limit_login_failures_per_ip),
        Fact("登录请求（每个 IP）", settings.rate_limit_login_per_ip),
        Fact("微信 code 无效（每个 IP）", settings.rate_limit_code_failures_per_ip),
        Fact("小程序登录（每个 IP）", settings.rate_limit_wechat_login_per_ip),
        Fact("获取手机号（每个 openid）", settings.rate_limit_phone_per_openid),
        Fact("客户行为（每个 openid）", settings.rate_limit_action_per_openid),
        Fact("客户行为（每个 IP）", settings.rate_limit_action_per_ip),
    ]
