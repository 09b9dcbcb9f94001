"""Mainland mobile numbers: what customers and staff are found by, in one normal form."""

from __future__ import annotations

import re
import unicodedata

MAINLAND_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
# Separators people type inside a number; anything else makes it not a phone number at all.
_SEPARATORS = re.compile(r"[\s\-()（）]")


def phone_digits(text: str) -> str:
    """`text` with full-width characters made plain and a number's separators dropped: a
    phone typed `１３８ ００１３` becomes `1380013` (anything else stays what it is)."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text))


def normalize_phone(raw: str) -> str | None:
    """The 11-digit mainland mobile number in `raw`, or None when it is not one.

    Full-width digits (a Chinese input method's) count as digits; spaces, dashes and
    brackets are dropped, and a +86 / 86 country prefix.
    """
    digits = phone_digits(raw)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits if MAINLAND_MOBILE.fullmatch(digits) else None
