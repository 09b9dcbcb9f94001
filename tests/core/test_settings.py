"""Settings refuse placeholder secrets outside development and accept the original's names."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from wxcrm.core.settings import Environment, Settings


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.mark.parametrize(
    ("secret_key", "app_secret", "named"),
    [
        ("", "a-real-app-secret", "SECRET_KEY"),
        ("changethis", "a-real-app-secret", "SECRET_KEY"),
        ("a-real-signing-key", "", "WECHAT_APP_SECRET"),
        ("a-real-signing-key", "your_app_secret_here", "WECHAT_APP_SECRET"),
    ],
)
def test_production_refuses_missing_or_placeholder_secrets(
    secret_key: str, app_secret: str, named: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        make(env=Environment.production, secret_key=secret_key, wechat_app_secret=app_secret)
    message = str(caught.value)
    assert named in message
    if app_secret:
        assert app_secret not in message  # the refused value is never echoed


PRODUCTION = {
    "env": "production",
    "secret_key": "k" * 40,
    "wechat_app_secret": "s" * 32,
    "wechat_app_id": "wxb2c4e35d16d99fd3",
    "database_url": "postgresql+asyncpg://wxcrm:db-password-1@db.internal/wxcrm",
    "rate_limit_storage_url": "redis://127.0.0.1:6379/0",
    "wechat_template_customer_action": "tmpl-action",
    "wechat_template_customer_assigned": "tmpl-assigned",
}


def test_production_starts_with_its_settings() -> None:
    settings = make(**PRODUCTION)
    assert settings.signing_key() == "k" * 40
    assert "s" * 32 not in repr(settings)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"wechat_app_id": "wx0000000000000000"}, "WECHAT_APP_ID"),
        ({"database_url": ""}, "DATABASE_URL"),
        ({"database_url": "sqlite+aiosqlite:///data/wxcrm.db"}, "DATABASE_URL"),
        ({"rate_limit_storage_url": "memory://"}, "RATE_LIMIT_STORAGE_URL"),
        ({"wechat_template_customer_action": ""}, "WECHAT_TEMPLATE_CUSTOMER_ACTION"),
        ({"wechat_template_customer_assigned": " "}, "WECHAT_TEMPLATE_CUSTOMER_ASSIGNED"),
    ],
)
def test_production_refuses_to_start_without_what_it_needs(
    changes: dict[str, str], named: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        make(**(PRODUCTION | changes))
    message = str(caught.value)
    assert named in message
    assert "db-password-1" not in message


@pytest.mark.parametrize(
    "storage",
    ["rediss://cache.internal:6380/1", "async+redis://127.0.0.1:6379/0", "valkey://127.0.0.1:6379"],
)
def test_production_takes_any_shared_rate_limit_storage(storage: str) -> None:
    assert make(**(PRODUCTION | {"rate_limit_storage_url": storage})).production_gaps() == []


def test_production_without_rate_limits_needs_no_redis() -> None:
    settings = make(
        **(PRODUCTION | {"rate_limit_enabled": False, "rate_limit_storage_url": "memory://"})
    )
    assert settings.production_gaps() == []


def test_aliases_of_the_original_system_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIPROGRAM_APPID", "wxb2c4e35d16d99fd3")
    monkeypatch.setenv("MINIPROGRAM_APPSECRET", "cloud-secret")
    monkeypatch.setenv("MINIPROGRAM_CLOUD_ENV", "cloud1-4gi0bpoje72fedd1")
    monkeypatch.setenv("NOTIFY_CHANNEL", "cloud")
    settings = make()
    assert settings.wechat_app_id == "wxb2c4e35d16d99fd3"
    assert settings.wechat_app_secret.get_secret_value() == "cloud-secret"
    assert settings.miniprogram_cloud_env == "cloud1-4gi0bpoje72fedd1"
    assert settings.notify_channel == "cloud"


def test_env_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("WECHAT_APP_ID=wx49e364f40a26e5a9\nMINIPROGRAM_STATE=trial\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.wechat_app_id == "wx49e364f40a26e5a9"
    assert settings.miniprogram_state == "trial"


def test_development_generates_a_key_once_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = make(data_dir=tmp_path)
    with caplog.at_level(logging.WARNING):
        key = first.signing_key()
    assert len(key) >= 32
    assert "generated a development key" in caplog.text
    assert key not in caplog.text
    # A second process (or start) reads the same key rather than making its own.
    assert make(data_dir=tmp_path).signing_key() == key
    assert (tmp_path / ".secret_key").stat().st_mode & 0o777 == 0o600


def test_default_database_is_sqlite_under_data() -> None:
    assert make().resolved_database_url == "sqlite+aiosqlite:///data/wxcrm.db"


def test_the_crm_lists_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTOMER_LEAD_SOURCES", '["官网", "转介绍", "地推"]')
    monkeypatch.setenv("POOL_DAILY_CLAIM_LIMIT", "5")
    settings = make()
    assert settings.lead_sources == ["官网", "转介绍", "地推"]
    assert settings.pool_daily_claim_limit == 5
    assert "已签约" in settings.contract_statuses  # untouched lists keep the original's
