"""The deployment files in deploy/ agree with the code: the example environment holds what
production refuses to start without, and the alerts name metrics that /metrics has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import httpx
import pytest

from wxcrm.core.settings import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
# Read by the units and prometheus-client, not by Settings.
NOT_SETTINGS = {"WXCRM_API_PROCESSES", "PROMETHEUS_MULTIPROC_DIR"}


def example_environment() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "wxcrm.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = " ".join(shlex.split(value))  # as sh and systemd unquote it
    return values


def setting_names() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names.update(getattr(alias, "choices", None) or [alias])
    return {name for name in names if isinstance(name, str)}


def test_the_example_environment_names_only_real_settings() -> None:
    unknown = set(example_environment()) - setting_names() - NOT_SETTINGS
    assert not unknown


def test_the_example_environment_once_filled_in_starts_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment = example_environment()
    blank = {name for name, value in environment.items() if not value}
    assert blank == {
        "SECRET_KEY",
        "WECHAT_APP_ID",
        "WECHAT_APP_SECRET",
        "WECHAT_TEMPLATE_CUSTOMER_ACTION",
        "WECHAT_TEMPLATE_CUSTOMER_ASSIGNED",
        "METRICS_TOKEN",
    }
    filled = environment | {name: f"operator-value-{name.lower()}" for name in blank}
    for name, value in filled.items():
        if name not in NOT_SETTINGS:  # read as the service reads them, JSON lists included
            monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.env == "production"
    assert settings.production_gaps() == []
    assert settings.worker_embedded is False
    assert settings.trusted_proxies == ["127.0.0.1"]


async def test_every_metric_the_alerts_name_is_exposed(client: httpx.AsyncClient) -> None:
    alerts = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    named = set(re.findall(r"\b(wxcrm_[a-z_]+)", alerts))
    exposed = (await client.get("/metrics")).text
    families = set(re.findall(r"^# TYPE (\S+) ", exposed, re.MULTILINE))
    suffixes = ("_total", "_bucket", "_count", "_sum")
    missing = {
        name
        for name in named
        if name not in families
        and not any(name.endswith(s) and name.removesuffix(s) in families for s in suffixes)
    }
    assert len(named) >= 8 and not missing
