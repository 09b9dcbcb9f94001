"""客户详情、编辑、新建: one customer's cards, timeline and actions."""

from __future__ import annotations

from wxcrm.console.routing import console_router

router = console_router()
