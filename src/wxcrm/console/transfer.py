"""导入导出: the import template, check-then-confirm import with progress, export."""

from __future__ import annotations

from wxcrm.console.routing import console_router

router = console_router()
