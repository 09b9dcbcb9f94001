"""All configuration in one place, read from the environment and `.env` (README: Configuration)."""

from __future__ import annotations

import logging
import re
import secrets
from datetime import time
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

log = logging.getLogger(__name__)

# Values that ship in examples and docs; a real deployment must replace them.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changethis", "change-me", "secret", "your_app_secret_here", "需要配置真实的secret"}
)
# The AppID of the examples and the simulator, no mini program's.
PLACEHOLDER_APP_ID = "wx0000000000000000"
# `limits`' Redis (and Valkey) storages, whose counts every process shares; each also
# spelled with `async+` in front, as `limits` names its asyncio storages.
_SHARED_RATE_LIMIT_SCHEMES = tuple(
    f"{name}{variant}://"
    for name in ("redis", "rediss", "valkey", "valkeys")
    for variant in ("", "+unix", "+sentinel", "+cluster")
)
_CLOCK_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
        # A refused value may be a secret: validation errors must not echo their input.
        hide_input_in_errors=True,
    )

    env: Environment = Field(
        Environment.development, validation_alias=AliasChoices("WXCRM_ENV", "ENV")
    )
    data_dir: Path = Field(Path("data"), validation_alias="WXCRM_DATA_DIR")
    database_url: str = Field("", validation_alias="DATABASE_URL")
    database_echo: bool = Field(False, validation_alias="DATABASE_ECHO")
    # Connections one process keeps (a request holds one at a time; the embedded worker
    # takes a few), and how long a request waits for one before answering 503.
    database_pool_size: int = Field(10, validation_alias="DATABASE_POOL_SIZE", ge=1, le=500)
    database_max_overflow: int = Field(10, validation_alias="DATABASE_MAX_OVERFLOW", ge=0, le=500)
    database_pool_timeout: float = Field(5.0, validation_alias="DATABASE_POOL_TIMEOUT", gt=0, le=60)
    # Customer actions waiting together are written in one transaction (group commit): at
    # most this many to a transaction.
    action_batch_max: int = Field(100, validation_alias="ACTION_BATCH_MAX", ge=1, le=1000)
    # On PostgreSQL, up to this many such transactions at once (each holds a connection).
    action_writers: int = Field(4, validation_alias="ACTION_WRITERS", ge=1, le=32)

    secret_key: SecretStr = Field(SecretStr(""), validation_alias="SECRET_KEY")
    staff_token_minutes: int = Field(12 * 60, validation_alias="STAFF_TOKEN_MINUTES", ge=1)
    miniprogram_token_minutes: int = Field(
        7 * 24 * 60, validation_alias="MINIPROGRAM_TOKEN_MINUTES", ge=1
    )

    wechat_app_id: str = Field(
        PLACEHOLDER_APP_ID, validation_alias=AliasChoices("WECHAT_APP_ID", "MINIPROGRAM_APPID")
    )
    wechat_app_secret: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("WECHAT_APP_SECRET", "MINIPROGRAM_APPSECRET"),
    )
    miniprogram_cloud_env: str = Field("", validation_alias="MINIPROGRAM_CLOUD_ENV")
    wechat_api_base: str = Field("https://api.weixin.qq.com", validation_alias="WECHAT_API_BASE")
    wechat_push_token: SecretStr = Field(SecretStr(""), validation_alias="WECHAT_PUSH_TOKEN")
    # The push's EncodingAESKey (43 characters): set, pushes are taken only in safe mode (安全模式).
    wechat_push_aes_key: SecretStr = Field(SecretStr(""), validation_alias="WECHAT_PUSH_AES_KEY")
    notify_channel: Literal["direct", "cloud"] = Field("direct", validation_alias="NOTIFY_CHANNEL")
    miniprogram_state: Literal["developer", "trial", "formal"] = Field(
        "formal", validation_alias="MINIPROGRAM_STATE"
    )
    wechat_lang: Literal["zh_CN", "en_US", "zh_HK", "zh_TW"] = Field(
        "zh_CN", validation_alias="WECHAT_LANG"
    )
    wechat_template_customer_action: str = Field(
        "", validation_alias="WECHAT_TEMPLATE_CUSTOMER_ACTION"
    )
    wechat_template_customer_action_fields: dict[str, str] = Field(
        default_factory=lambda: {
            "title": "thing1",
            "time": "time2",
            "phone": "thing3",
            "customer_name": "thing7",
        },
        validation_alias="WECHAT_TEMPLATE_CUSTOMER_ACTION_FIELDS",
    )
    wechat_template_customer_assigned: str = Field(
        "", validation_alias="WECHAT_TEMPLATE_CUSTOMER_ASSIGNED"
    )
    wechat_template_customer_assigned_fields: dict[str, str] = Field(
        default_factory=lambda: {
            "customer_name": "thing1",
            "reason": "thing2",
            "assigner": "name3",
            "time": "time4",
        },
        validation_alias="WECHAT_TEMPLATE_CUSTOMER_ASSIGNED_FIELDS",
    )
    wechat_template_follow_up_reminder: str = Field(
        "", validation_alias="WECHAT_TEMPLATE_FOLLOW_UP_REMINDER"
    )
    # `title` says how many are due ("今日有3位客户待跟进"), `count` is that number, and
    # `date` is the day (a date keyword, or a thing).
    wechat_template_follow_up_reminder_fields: dict[str, str] = Field(
        default_factory=lambda: {
            "title": "thing1",
            "customer_name": "thing2",
            "count": "number3",
            "date": "date4",
        },
        validation_alias="WECHAT_TEMPLATE_FOLLOW_UP_REMINDER_FIELDS",
    )
    # Template ids whose subscription is long-term: sending never consumes a credit.
    wechat_long_term_templates: list[str] = Field(
        default_factory=list, validation_alias="WECHAT_LONG_TERM_TEMPLATES"
    )

    wechat_cloud_function: str = Field(
        "quickstartFunctions", validation_alias="WECHAT_CLOUD_FUNCTION"
    )

    # The delivery worker (README: Notifications).
    worker_embedded: bool = Field(True, validation_alias="WORKER_EMBEDDED")
    worker_concurrency: int = Field(64, validation_alias="WORKER_CONCURRENCY", ge=1, le=1000)
    worker_poll_seconds: float = Field(0.25, validation_alias="WORKER_POLL_SECONDS", gt=0)
    worker_heartbeat_seconds: float = Field(5.0, validation_alias="WORKER_HEARTBEAT_SECONDS", gt=0)
    # A `sending` row whose worker has not beaten for this long is given to another worker.
    worker_stale_seconds: float = Field(30.0, validation_alias="WORKER_STALE_SECONDS", gt=0)
    outbox_max_attempts: int = Field(6, validation_alias="OUTBOX_MAX_ATTEMPTS", ge=1)
    outbox_retry_base_seconds: float = Field(
        2.0, validation_alias="OUTBOX_RETRY_BASE_SECONDS", gt=0
    )
    outbox_retry_max_seconds: float = Field(
        300.0, validation_alias="OUTBOX_RETRY_MAX_SECONDS", gt=0
    )
    # Repeated actions of one customer towards one advisor inside this window fold into one message.
    notify_fold_window_minutes: float = Field(
        10.0, validation_alias="NOTIFY_FOLD_WINDOW_MINUTES", ge=0
    )

    # When, in Beijing time (HH:MM), advisors are told each day of the follow-ups due that day.
    follow_up_reminder_time: time = Field(time(9, 0), validation_alias="FOLLOW_UP_REMINDER_TIME")

    # The CRM's lists; the defaults are the original system's.
    lead_sources: list[str] = Field(
        default_factory=lambda: (
            "美团 抖音 快手 小红书 转介绍 99保姆网 杭州同馨 握个手平台 线索购买 莲心 美家"
            " 天机鹿 孕妈联盟 高阁 星星 妈妈网 犀牛 宝宝树 幼亲舒 熊猫 官网 其他"
        ).split(),
        validation_alias="CUSTOMER_LEAD_SOURCES",
    )
    service_categories: list[str] = Field(
        default_factory=lambda: (
            "月嫂 住家育儿嫂 保洁 住家保姆 养宠 小时工 白班育儿 白班保姆 住家护老 家教 陪伴师"
        ).split(),
        validation_alias="CUSTOMER_SERVICE_CATEGORIES",
    )
    contract_statuses: list[str] = Field(
        default_factory=lambda: "已签约 签约中 匹配中 已面试 流失客户 已退款 退款中 待定".split(),
        validation_alias="CUSTOMER_CONTRACT_STATUSES",
    )
    lead_levels: list[str] = Field(
        default_factory=lambda: "O类 A类 B类 C类 D类 流失".split(),
        validation_alias="CUSTOMER_LEAD_LEVELS",
    )

    # The public pool (公海); every limit and period is a setting.
    pool_daily_claim_limit: int = Field(20, validation_alias="POOL_DAILY_CLAIM_LIMIT", ge=0)
    pool_holding_cap: int = Field(300, validation_alias="POOL_HOLDING_CAP", ge=0)
    pool_cooling_days: float = Field(7, validation_alias="POOL_COOLING_DAYS", ge=0)
    pool_recycle_after_days: float = Field(15, validation_alias="POOL_RECYCLE_AFTER_DAYS", gt=0)
    pool_recycle_warning_days: float = Field(3, validation_alias="POOL_RECYCLE_WARNING_DAYS", ge=0)
    # Contract statuses of customers that never go back to the pool by themselves.
    pool_protected_statuses: list[str] = Field(
        default_factory=lambda: ["已签约"], validation_alias="POOL_PROTECTED_STATUSES"
    )

    max_body_bytes: int = Field(1024 * 1024, validation_alias="MAX_BODY_BYTES", ge=1024)

    # Rate limits (limits' notation: "5/5minutes;20/day"; several windows all apply).
    # Failures are counted tightly, successful traffic loosely: a whole office, or every
    # mini-program user behind one reverse proxy, may share one address.
    rate_limit_enabled: bool = Field(True, validation_alias="RATE_LIMIT_ENABLED")
    # memory:// counts inside one process; redis://host:6379/0 shares the counts between
    # every process of a deployment.
    rate_limit_storage_url: str = Field("memory://", validation_alias="RATE_LIMIT_STORAGE_URL")
    rate_limit_key_prefix: str = Field("wxcrm", validation_alias="RATE_LIMIT_KEY_PREFIX")
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: list[str] = Field(default_factory=list, validation_alias="TRUSTED_PROXIES")
    # Wrong passwords for one username: each window longer, so the lockout grows.
    rate_limit_login_failures_per_username: str = Field(
        "5/5minutes;10/hour;20/day", validation_alias="RATE_LIMIT_LOGIN_FAILURES_PER_USERNAME"
    )
    rate_limit_login_failures_per_ip: str = Field(
        "30/5minutes;100/hour", validation_alias="RATE_LIMIT_LOGIN_FAILURES_PER_IP"
    )
    rate_limit_login_per_ip: str = Field("120/minute", validation_alias="RATE_LIMIT_LOGIN_PER_IP")
    # Bad or used wx.login / getPhoneNumber codes (each one costs a call to WeChat).
    rate_limit_code_failures_per_ip: str = Field(
        "20/minute;200/hour", validation_alias="RATE_LIMIT_CODE_FAILURES_PER_IP"
    )
    rate_limit_wechat_login_per_ip: str = Field(
        "1200/minute", validation_alias="RATE_LIMIT_WECHAT_LOGIN_PER_IP"
    )
    rate_limit_phone_per_openid: str = Field(
        "10/minute;50/day", validation_alias="RATE_LIMIT_PHONE_PER_OPENID"
    )
    rate_limit_action_per_openid: str = Field(
        "30/minute;500/day", validation_alias="RATE_LIMIT_ACTION_PER_OPENID"
    )
    rate_limit_action_per_ip: str = Field(
        "6000/minute", validation_alias="RATE_LIMIT_ACTION_PER_IP"
    )

    # A migration aid: POST /api/customer/action without a session token takes the body's
    # customerId as the (unverified) openid. Turn it off once the mini program sends tokens.
    miniprogram_anonymous_actions: bool = Field(
        False, validation_alias="MINIPROGRAM_ANONYMOUS_ACTIONS"
    )

    # None: the OpenAPI pages (/docs, /openapi.json) are on outside production only.
    api_docs: bool | None = Field(None, validation_alias="API_DOCS")
    # Origins allowed to call the API from a browser on another origin; none by default.
    cors_allow_origins: list[str] = Field(
        default_factory=list, validation_alias="CORS_ALLOW_ORIGINS"
    )
    # GET /metrics: with a token set, only `Authorization: Bearer <token>` reads it; without
    # one it is open unless METRICS_PUBLIC says otherwise (default: open outside production).
    metrics_token: SecretStr = Field(SecretStr(""), validation_alias="METRICS_TOKEN")
    metrics_public: bool | None = Field(None, validation_alias="METRICS_PUBLIC")
    log_format: Literal["json", "console"] = Field("json", validation_alias="LOG_FORMAT")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")

    _signing_key: str | None = PrivateAttr(None)

    @field_validator("follow_up_reminder_time", mode="before")
    @classmethod
    def _hours_and_minutes(cls, value: object) -> object:
        # Only HH:MM: "9", "9:00" or "09:00:30" would each be read some way nobody meant.
        if isinstance(value, str):
            match = _CLOCK_TIME.fullmatch(value.strip())
            if match is None:
                raise ValueError("must be a 24-hour time as HH:MM, e.g. 09:00")
            return time(int(match.group(1)), int(match.group(2)))
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.env is Environment.development or self.env is Environment.test:
            return self
        problems = []
        if self.secret_key.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            problems.append("SECRET_KEY")
        if self.wechat_app_secret.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            problems.append("WECHAT_APP_SECRET (or MINIPROGRAM_APPSECRET)")
        if problems:
            raise ValueError(
                f"{' and '.join(problems)} must be set to a real secret when WXCRM_ENV={self.env}"
                " (placeholders such as 'changethis' are refused)"
            )
        missing = self.production_gaps()
        if missing:
            raise ValueError(
                f"WXCRM_ENV={self.env} needs " + "; ".join(missing) + " (README: Deployment)"
            )
        return self

    def production_gaps(self) -> list[str]:
        """What a production deployment must set and this one has not (values never shown:
        a URL may carry a password)."""
        gaps = []
        if self.wechat_app_id in ("", PLACEHOLDER_APP_ID):
            gaps.append("WECHAT_APP_ID: the mini program's AppID")
        if _backend(self.database_url) != "postgresql":
            gaps.append("DATABASE_URL: a PostgreSQL database (postgresql+asyncpg://…)")
        storage = self.rate_limit_storage_url.removeprefix("async+")
        if self.rate_limit_enabled and not storage.startswith(_SHARED_RATE_LIMIT_SCHEMES):
            gaps.append("RATE_LIMIT_STORAGE_URL: Redis (redis://…), shared by every process")
        for variable, template_id in (
            ("WECHAT_TEMPLATE_CUSTOMER_ACTION", self.wechat_template_customer_action),
            ("WECHAT_TEMPLATE_CUSTOMER_ASSIGNED", self.wechat_template_customer_assigned),
        ):
            if not template_id.strip():
                gaps.append(f"{variable}: the subscribe-message template id")
        return gaps

    @property
    def metrics_open(self) -> bool:
        """Whether /metrics answers without a token (when no METRICS_TOKEN is set)."""
        if self.metrics_public is None:
            return self.env is not Environment.production
        return self.metrics_public

    @property
    def docs_enabled(self) -> bool:
        return self.env is not Environment.production if self.api_docs is None else self.api_docs

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'wxcrm.db'}"

    def signing_key(self) -> str:
        """The key that signs tokens; in development one is generated once and kept on disk.

        Kept in a file rather than in memory so that every development process (API,
        workers) signs and verifies with the same key.
        """
        if self._signing_key is None:
            self._signing_key = self._resolve_signing_key()
        return self._signing_key

    def _resolve_signing_key(self) -> str:
        # Resolved once per settings object: every authenticated request asks for it.
        configured = self.secret_key.get_secret_value()
        if configured:
            return configured
        key_file = self.data_dir / ".secret_key"
        if key_file.exists():
            return key_file.read_text().strip()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        try:
            with key_file.open("x") as handle:  # "x": a concurrent starter wins, we re-read
                handle.write(key)
            key_file.chmod(0o600)
            log.warning(
                "SECRET_KEY is not set: generated a development key in %s "
                "(set SECRET_KEY outside development)",
                key_file,
            )
        except FileExistsError:
            return key_file.read_text().strip()
        return key


def _backend(url: str) -> str:
    """`postgresql` of postgresql+asyncpg://…; empty for no URL or none SQLAlchemy reads."""
    try:
        return make_url(url).get_backend_name()
    except ArgumentError:
        return ""


@lru_cache
def get_settings() -> Settings:
    return Settings()
