"""A business operation the staff mini program asked for and we refuse.

The deployed mini program reads such a refusal from a body with the route's normal status
(200, or 201 for a POST), `success: false`, a Chinese `message` and an `error` string it
branches on. Services raise `Refused`; it leaves the route, so the request's transaction is
rolled back, and the router's handler (installed by the app) answers it. Bad input and
missing credentials stay 4xx.
"""

from __future__ import annotations

# The `error` codes the mini program branches on; other refusals carry their message.
FORBIDDEN = "FORBIDDEN"
DUPLICATE_PHONE = "DUPLICATE_PHONE"
DUPLICATE_WECHAT = "DUPLICATE_WECHAT"
MISSING_CONTACT = "MISSING_CONTACT"


class Refused(Exception):
    def __init__(self, message: str, error: str | None = None) -> None:
        self.message = message
        self.error = error or message
        super().__init__(message)
