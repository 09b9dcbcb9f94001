"""通知: the delivery log, each message's attempts, retry; advisors' subscriptions."""

from __future__ import annotations

from wxcrm.console.routing import console_router

router = console_router()
