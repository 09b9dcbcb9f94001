"""How the console writes values people read: phones grouped, times in Beijing, contract
statuses in their colours, WeChat's errors."""

from __future__ import annotations

import re
from datetime import datetime

from wxcrm.core import clock


def grouped_phone(phone: str | None) -> str:
    """`13800138000` as `138 0013 8000`; anything else as stored."""
    if phone and re.fullmatch(r"\d{11}", phone):
        return f"{phone[:3]} {phone[3:7]} {phone[7:]}"
    return phone or ""


def beijing(moment: datetime | None) -> str:
    """`2024-01-01 12:00` in Beijing time."""
    return moment.astimezone(clock.SHANGHAI).strftime("%Y-%m-%d %H:%M") if moment else ""


def wechat_error(code: int | None, message: str | None) -> str:
    """WeChat's last answer to a notification, `40003 invalid openid`; either part may be
    missing, and "" when both are."""
    return " ".join(part for part in (str(code) if code is not None else "", message or "") if part)


# The tag colour of each contract status (CONSOLE.md): signed green, under way blue, lost
# grey, refunds orange; any other status plain.
CONTRACT_TONES = {
    "已签约": "green",
    "签约中": "blue",
    "匹配中": "blue",
    "流失客户": "grey",
    "已退款": "orange",
    "退款中": "orange",
}


def contract_tone(status: str | None) -> str:
    return CONTRACT_TONES.get(status or "", "default")
