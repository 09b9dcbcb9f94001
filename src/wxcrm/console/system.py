"""系统设置 (admin, read-only): WeChat settings without secrets, templates, pool rules."""

from __future__ import annotations

from wxcrm.console.routing import console_router

router = console_router()
