"""公海: the pool's cards and list; claim (advisor), assign (manager)."""

from __future__ import annotations

from wxcrm.console.routing import console_router

router = console_router()
