"""WeChat's limits on subscribe-message keyword values, as WeChat documents them.

A key's prefix is its keyword type (`thing1` is a thing, `character_string3` a character
string). Where WeChat's page leaves a point open the rule here says which way we went.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Callable, Mapping

_KEY = re.compile(r"([a-z_]+)(\d+)")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_DATE_CN = re.compile(r"(?:(\d{4})年)?(\d{1,2})月(?:(\d{1,2})日)?")
_DATE_SEP = re.compile(r"(\d{1,4})([-/.])(\d{1,2})(?:\2(\d{1,2}))?")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_AMOUNT = re.compile(r"([^0-9\s])?([0-9]+)(?:\.([0-9]+))?(元)?")


def is_chinese(char: str) -> bool:
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= code <= 0x4DBF  # extension A
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= code <= 0x3FFFF  # extensions B and later
    )


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _is_letter(char: str) -> bool:
    return ("a" <= char <= "z") or ("A" <= char <= "Z")


def _is_symbol(char: str) -> bool:
    # "Common symbols other than Chinese, English letters and digits": punctuation, symbols,
    # and the plain space (names such as "John Smith" are letters and symbols).
    category = unicodedata.category(char)
    return category[0] in "PS" or category == "Zs"


def _is_forbidden(char: str) -> bool:
    # Newlines and other control characters are invalid in every type; a lone surrogate
    # (possible through a JSON \ud800 escape) is not a character at all.
    return unicodedata.category(char) in {"Cc", "Zl", "Zp", "Cs"}


def _thing(value: str) -> bool:
    return len(value) <= 20


def _number(value: str) -> bool:
    return _NUMBER.fullmatch(value) is not None and sum(map(_is_digit, value)) <= 32


def _letter(value: str) -> bool:
    return len(value) <= 32 and all(map(_is_letter, value))


def _symbol(value: str) -> bool:
    return len(value) <= 5 and all(map(_is_symbol, value))


def _character_string(value: str) -> bool:
    return len(value) <= 32 and all(
        _is_digit(c) or _is_letter(c) or (_is_symbol(c) and not is_chinese(c)) for c in value
    )


def _valid_time(text: str) -> bool:
    match = _TIME.fullmatch(text)
    if match is None:
        return False
    hour, minute, second = match.groups()
    return int(hour) <= 23 and int(minute) <= 59 and (second is None or int(second) <= 59)


def _valid_day(year: int | None, month: int, day: int | None) -> bool:
    if not 1 <= month <= 12:
        return False
    if day is None:
        return True
    # Without a year, 29 February is allowed: some year has it.
    return 1 <= day <= calendar.monthrange(year if year is not None else 2000, month)[1]


def _valid_date(text: str) -> bool:
    """`y年m月d日`, `y年m月`, `m月d日`, or the same joined with `-`, `/` or `.`."""
    match = _DATE_CN.fullmatch(text)
    if match is not None:
        year, month, day = match.groups()
        if year is None and day is None:  # a bare "10月" is not one of the listed forms
            return False
        return _valid_day(int(year) if year else None, int(month), int(day) if day else None)
    match = _DATE_SEP.fullmatch(text)
    if match is None:
        return False
    first, _sep, second, third = match.groups()
    if third is not None:  # y-m-d
        return len(first) == 4 and _valid_day(int(first), int(second), int(third))
    if len(first) == 4:  # y-m
        return _valid_day(int(first), int(second), None)
    return len(first) <= 2 and _valid_day(None, int(first), int(second))  # m-d


def _split_date_time(text: str) -> tuple[str, str | None]:
    """A date followed by a time: separated by spaces, or by nothing after `日`."""
    if " " in text:
        date_part, _, time_part = text.partition(" ")
        return date_part, time_part.lstrip(" ")
    if "日" in text and not text.endswith("日"):
        date_part, _, time_part = text.partition("日")
        return date_part + "日", time_part
    return text, None


def _time_point(text: str) -> bool:
    if _valid_time(text):
        return True
    date_part, time_part = _split_date_time(text)
    return time_part is not None and _valid_date(date_part) and _valid_time(time_part)


def _date_point(text: str) -> bool:
    date_part, time_part = _split_date_time(text)
    return _valid_date(date_part) and (time_part is None or _valid_time(time_part))


def _range_of(point: Callable[[str], bool]) -> Callable[[str], bool]:
    """One point, or two joined by `~` (spaces around the `~` allowed)."""

    def check(value: str) -> bool:
        parts = value.split("~")
        return (
            value == value.strip(" ")
            and len(parts) <= 2
            and all(point(part.strip(" ")) for part in parts)
        )

    return check


def _amount(value: str) -> bool:
    match = _AMOUNT.fullmatch(value)
    if match is None:
        return False
    currency, whole, fraction, _yuan = match.groups()
    if currency is not None and unicodedata.category(currency) != "Sc":
        return False
    return len(whole) + len(fraction or "") <= 10


def _phone_number(value: str) -> bool:
    return len(value) <= 17 and all(_is_digit(c) or _is_symbol(c) for c in value)


def _car_number(value: str) -> bool:
    if len(value) > 8:
        return False
    last = len(value) - 1
    return all(
        _is_digit(c) or _is_letter(c) or (is_chinese(c) and i in (0, last))
        for i, c in enumerate(value)
    )


def _name(value: str) -> bool:
    if any(map(is_chinese, value)):  # mixed Chinese and Latin counts as a Chinese name
        return len(value) <= 10 and all(
            is_chinese(c) or _is_letter(c) or _is_symbol(c) for c in value
        )
    return len(value) <= 20 and all(_is_letter(c) or _is_symbol(c) for c in value)


def _phrase(value: str) -> bool:
    return len(value) <= 5 and all(map(is_chinese, value))


def _enum(value: str) -> bool:
    # The allowed values live in the template's settings, which the simulator does not know.
    return True


RULES: Mapping[str, Callable[[str], bool]] = {
    "thing": _thing,
    "number": _number,
    "letter": _letter,
    "symbol": _symbol,
    "character_string": _character_string,
    "time": _range_of(_time_point),
    "date": _range_of(_date_point),
    "amount": _amount,
    "phone_number": _phone_number,
    "car_number": _car_number,
    "name": _name,
    "phrase": _phrase,
    "enum": _enum,
}


def keyword_type(key: str) -> str | None:
    """The keyword type a data key names (`thing1` → `thing`), or None if none does."""
    match = _KEY.fullmatch(key)
    if match is None or match.group(1) not in RULES:
        return None
    return match.group(1)


def is_valid_value(key: str, value: str) -> bool:
    kind = keyword_type(key)
    if kind is None or not value.strip() or any(map(_is_forbidden, value)):
        return False
    return RULES[kind](value)


def first_invalid_key(data: Mapping[str, object]) -> str | None:
    """The first key, in the order sent, whose entry is not `{"value": <valid string>}`."""
    for key, entry in data.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(value, str) or not is_valid_value(key, value):
            return key
    return None
