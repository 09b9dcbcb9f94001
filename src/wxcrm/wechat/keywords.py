"""Fitting template data to WeChat's keyword types, so that no message is refused with 47003.

A subscribe message's field key starts with its keyword type (`thing1`, `time2`, `name3`), and
WeChat checks each value against that type's rule (wechat/sim/rules.py applies the same
rules in the simulator). Values come from customers and staff, so they are cleaned, converted
and cut here before a message is queued; where no honest value of the type can be made,
`UnfittableValue` says so instead.

A value of which nothing is left once fitted (an emoji-only or zero-width name, a "phone" with
no digit) must not cost the message: WeChat refuses an empty value (47003) and the row would
fail for good. Types with a neutral value show it instead (`PLACEHOLDER`), and a blank time
is the moment of fitting. Types where any stand-in would state something false (a number, an
amount, a plate, letters, an enum) still refuse.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from enum import StrEnum
from functools import lru_cache

from wxcrm.core.clock import SHANGHAI


class KeywordType(StrEnum):
    thing = "thing"
    number = "number"
    letter = "letter"
    symbol = "symbol"
    character_string = "character_string"
    time = "time"
    date = "date"
    amount = "amount"
    phone_number = "phone_number"
    car_number = "car_number"
    name = "name"
    phrase = "phrase"
    enum = "enum"


class UnfittableValue(ValueError):
    """No value of the key's type can stand for the input; the message is for API users."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        self.message = f"模板字段 {key}：{reason}" if key else reason
        super().__init__(self.message)


THING_MAX = 20
NAME_CHINESE_MAX = 10
NAME_LATIN_MAX = 20
PHRASE_MAX = 5
NUMBER_MAX = 32
LETTER_MAX = 32
SYMBOL_MAX = 5
CHARACTER_STRING_MAX = 32
AMOUNT_DIGITS_MAX = 10
PHONE_NUMBER_MAX = 17
CAR_NUMBER_MAX = 8
ELLIPSIS = "…"

# What a keyword shows when its value fits to nothing. "-" is how a Chinese form marks an
# empty field, and what the cloud function sends for a blank value; it is a symbol, so it
# suits every type that takes symbols. A phrase takes only Chinese characters: "无" (none).
PLACEHOLDER = "-"
PHRASE_PLACEHOLDER = "无"

_KEY = re.compile(r"([a-z_]+)([0-9]+)")


def keyword_type(key: str) -> KeywordType:
    """The keyword type a template key names by its prefix (`thing1` → thing)."""
    match = _KEY.fullmatch(key)
    if match is None:
        raise UnfittableValue(key, "字段名应为关键词类型加序号，如 thing1、time2")
    try:
        return KeywordType(match.group(1))
    except ValueError:
        raise UnfittableValue(key, f"未知的关键词类型 {match.group(1)}") from None


# ---------------------------------------------------------------------------------------------
# Characters
# ---------------------------------------------------------------------------------------------

# Emoji and pictographs of the Basic Multilingual Plane (those outside it go with every other
# non-Chinese astral character): WeChat's 47003 reports are full of them.
_BMP_PICTOGRAPHS = (
    (0x231A, 0x231B),
    (0x2328, 0x2328),
    (0x23CF, 0x23CF),
    (0x23E9, 0x23F3),
    (0x23F8, 0x23FA),
    (0x24C2, 0x24C2),
    (0x25AA, 0x25AB),
    (0x25B6, 0x25B6),
    (0x25C0, 0x25C0),
    (0x25FB, 0x25FE),
    (0x2600, 0x27BF),  # Miscellaneous Symbols, Dingbats
    (0x2934, 0x2935),
    (0x2B00, 0x2BFF),  # Miscellaneous Symbols and Arrows
    (0x20E3, 0x20E3),  # combining enclosing keycap
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3297),
    (0x3299, 0x3299),
    (0xFE00, 0xFE0F),  # variation selectors
)

_HAN = (
    (0x3400, 0x4DBF),  # Extension A
    (0x4E00, 0x9FFF),  # Unified Ideographs
    (0xF900, 0xFAFF),  # Compatibility Ideographs
    (0x20000, 0x323AF),  # Extensions B–H and the supplementary compatibility block
)

_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_ASCII_DIGITS = frozenset("0123456789")
_ASCII_PRINTABLE = frozenset(chr(cp) for cp in range(0x21, 0x7F))
_PHONE_CHARS = _ASCII_DIGITS | frozenset("+-()")

# Full-width forms (common from Chinese input methods) of ASCII, for the ASCII-only types.
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def _in_ranges(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= cp <= high for low, high in ranges)


# Per-character answers are cached: the delivery worker fits every message it sends.
@lru_cache(maxsize=8192)
def _is_han(ch: str) -> bool:
    return _in_ranges(ord(ch), _HAN)


@lru_cache(maxsize=8192)
def _dropped(ch: str) -> bool:
    # Control, format (zero-width, bidi), surrogate, private-use and unassigned characters.
    if unicodedata.category(ch)[0] == "C":
        return True
    cp = ord(ch)
    if cp > 0xFFFF:  # emoji live here; rare Chinese characters are kept for names
        return not _is_han(ch)
    return _in_ranges(cp, _BMP_PICTOGRAPHS)


def _clean(text: str) -> str:
    """Text WeChat accepts anywhere: no controls or emoji, single spaces, trimmed."""
    kept: list[str] = []
    for ch in text:
        if ch.isspace():  # newlines and tabs included, so "a\nb" stays two words
            kept.append(" ")
        elif not _dropped(ch):
            # A combining mark with nothing to combine with (its base was dropped) goes too.
            if unicodedata.category(ch)[0] == "M" and (not kept or kept[-1] == " "):
                continue
            kept.append(ch)
    return " ".join("".join(kept).split())


def _ascii_fold(text: str) -> str:
    return text.translate(_FULLWIDTH)


def _cut(text: str, limit: int) -> str:
    """At most `limit` code points, an ellipsis marking the cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + ELLIPSIS


# ---------------------------------------------------------------------------------------------
# Values as text
# ---------------------------------------------------------------------------------------------


def _plain_decimal(value: Decimal) -> str:
    if not value.is_finite() or abs(value.adjusted()) > 64:
        return str(value)  # no 10**9-digit expansions of an exponent
    return format(value, "f")


def _as_decimal(value: float | Decimal) -> Decimal:
    # repr gives the shortest text of a float, so 0.1 is 0.1 and not its binary expansion.
    return Decimal(repr(value)) if isinstance(value, float) else value


def _as_text(value: object, key: str, tz: tzinfo) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # beyond Python's integer-to-text digit limit
            raise UnfittableValue(key, "数字过长") from None
    if isinstance(value, float | Decimal):
        return _plain_decimal(_as_decimal(value))
    if isinstance(value, datetime):
        return _format_datetime(_localize(value, key, tz))
    if isinstance(value, date):
        return _format_date(value)
    if isinstance(value, time):
        return _format_time(value)
    return str(value)


def _text(value: object, key: str, tz: tzinfo) -> str:
    return _clean(_as_text(value, key, tz))


def _required(text: str, key: str, what: str = "有效内容") -> str:
    if not text:
        raise UnfittableValue(key, f"值为空或不含{what}")
    return text


def _or_placeholder(text: str, placeholder: str = PLACEHOLDER) -> str:
    return text or placeholder


# ---------------------------------------------------------------------------------------------
# Free text: thing, name, phrase, enum
# ---------------------------------------------------------------------------------------------


def _fit_thing(value: object, key: str, tz: tzinfo) -> str:
    return _cut(_or_placeholder(_text(value, key, tz)), THING_MAX)


def _fit_name(value: object, key: str, tz: tzinfo) -> str:
    # A name is Chinese, or "letters or symbols" (§3.1): digits are neither, and "letters"
    # are read safely as ASCII ones, so accents are folded away (Zoë → Zoe) and other
    # scripts dropped.
    text = "".join(_name_char(ch) for ch in _text(value, key, tz))
    text = _or_placeholder(_clean(text))
    # Mixed Chinese and Latin counts as Chinese.
    limit = NAME_CHINESE_MAX if any(_is_han(ch) for ch in text) else NAME_LATIN_MAX
    return _cut(text, limit)


def _name_char(ch: str) -> str:
    if _is_han(ch) or ch in _ASCII_LETTERS or unicodedata.category(ch)[0] in "PSZ":
        return ch
    if unicodedata.category(ch)[0] == "L":
        return "".join(c for c in unicodedata.normalize("NFKD", ch) if c in _ASCII_LETTERS)
    return ""


def _fit_phrase(value: object, key: str, tz: tzinfo) -> str:
    han = "".join(ch for ch in _text(value, key, tz) if _is_han(ch))
    # An ellipsis is not a Chinese character, so the cut is silent.
    return _or_placeholder(han, PHRASE_PLACEHOLDER)[:PHRASE_MAX]


def _fit_enum(value: object, key: str, tz: tzinfo, allowed: Collection[str] | None) -> str:
    text = _required(_text(value, key, tz), key)
    if allowed is not None and text not in allowed:
        choices = "、".join(sorted(allowed))
        raise UnfittableValue(key, f"取值必须是 {choices} 之一" if choices else "没有可用的取值")
    return text


# ---------------------------------------------------------------------------------------------
# Restricted alphabets: letter, symbol, character_string, phone_number, car_number
# ---------------------------------------------------------------------------------------------


def _fit_letter(value: object, key: str, tz: tzinfo) -> str:
    letters = "".join(ch for ch in _ascii_fold(_text(value, key, tz)) if ch in _ASCII_LETTERS)
    return _required(letters, key, "英文字母")[:LETTER_MAX]


def _fit_symbol(value: object, key: str, tz: tzinfo) -> str:
    symbols = "".join(ch for ch in _text(value, key, tz) if unicodedata.category(ch)[0] in "PS")
    return _or_placeholder(symbols)[:SYMBOL_MAX]


def _fit_character_string(value: object, key: str, tz: tzinfo) -> str:
    text = _ascii_fold(_text(value, key, tz))
    kept = "".join(ch for ch in text if ch in _ASCII_PRINTABLE)
    return _or_placeholder(kept)[:CHARACTER_STRING_MAX]


def _fit_phone_number(value: object, key: str, tz: tzinfo) -> str:
    if isinstance(value, float | Decimal):
        number = _as_decimal(value)
        if number.is_finite() and number.adjusted() < NUMBER_MAX and number == int(number):
            value = int(number)  # 13800138000.0 is 13800138000, not 138001380000
    text = _ascii_fold(_text(value, key, tz))
    phone = "".join(ch for ch in text if ch in _PHONE_CHARS)[:PHONE_NUMBER_MAX]
    # Brackets and dashes without a digit are no number: the placeholder says so plainly.
    return phone if any(ch in _ASCII_DIGITS for ch in phone) else PLACEHOLDER


def _fit_car_number(value: object, key: str, tz: tzinfo) -> str:
    text = _ascii_fold(_text(value, key, tz)).upper()
    chars = [ch for ch in text if _is_han(ch) or ch in _ASCII_LETTERS or ch in _ASCII_DIGITS]
    # Chinese only at the two ends (粤A8Z888挂); any in between is dropped.
    first = chars[0] if chars and _is_han(chars[0]) else ""
    rest = chars[1:] if first else chars
    last = rest[-1] if rest and _is_han(rest[-1]) else ""
    middle = "".join(ch for ch in (rest[:-1] if last else rest) if not _is_han(ch))
    if not middle:
        raise UnfittableValue(key, "车牌号不含字母或数字")
    return first + middle[: CAR_NUMBER_MAX - len(first) - len(last)] + last


# ---------------------------------------------------------------------------------------------
# Numbers: number, amount
# ---------------------------------------------------------------------------------------------

_NEGATIVE = re.compile(r"[-−]\s*[0-9.]")
_CURRENCY_SYMBOLS = "¥￥$€£"
_AMOUNT = re.compile(
    rf"(?:[{_CURRENCY_SYMBOLS}](?P<a>[0-9]+(?:\.[0-9]+)?)|(?P<b>[0-9]+(?:\.[0-9]+)?)元)", re.ASCII
)


def _numeric(value: object) -> Decimal | None:
    """The value as a Decimal when it is a number type (bool is not one here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float | Decimal):
        return _as_decimal(value)
    return None


def _exponent(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0


def _non_negative(number: Decimal, key: str) -> Decimal:
    if not number.is_finite():
        raise UnfittableValue(key, "不是有限的数字")
    if number < 0:
        raise UnfittableValue(key, "不能为负数")
    return number.copy_abs()  # -0 is 0; abs() would round to the context precision


def _digits_and_point(text: str) -> tuple[str, str] | None:
    """The digits of a text and those after its first decimal point; None when it has none."""
    whole: list[str] = []
    fraction: list[str] = []
    seen_point = False
    for ch in text:
        if ch in _ASCII_DIGITS:
            (fraction if seen_point else whole).append(ch)
        elif ch == "." and not seen_point:
            seen_point = True
    if not whole and not fraction:
        return None
    return "".join(whole) or "0", "".join(fraction)


def _fit_number(value: object, key: str, tz: tzinfo) -> str:
    number = _numeric(value)
    if number is not None:
        number = _non_negative(number, key)
        whole_digits = max(number.adjusted() + 1, 1)
        if whole_digits > NUMBER_MAX:
            raise UnfittableValue(key, f"整数部分超过{NUMBER_MAX}位")
        places = max(NUMBER_MAX - whole_digits - 1, 0)
        if _exponent(number) < -places:  # cut before expanding 1E-999999
            with localcontext() as context:
                context.prec = NUMBER_MAX + 2
                # Zeros left at the end of a cut say nothing (1E-100 is 0, not 0.000…).
                number = number.quantize(Decimal(1).scaleb(-places), ROUND_DOWN).normalize()
        whole, _, fraction = format(number, "f").partition(".")
    else:
        text = _ascii_fold(_text(value, key, tz))
        if _NEGATIVE.match(text):
            raise UnfittableValue(key, "不能为负数")
        parts = _digits_and_point(text)
        if parts is None:
            raise UnfittableValue(key, "不含数字")
        whole, fraction = parts
        if len(whole) > NUMBER_MAX:
            raise UnfittableValue(key, f"整数部分超过{NUMBER_MAX}位")
    # Cutting the integer part would change the number; cutting decimals only loses precision.
    room = max(NUMBER_MAX - len(whole) - 1, 0)
    if len(fraction) > room:
        fraction = fraction[:room].rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def _amount_digits(text: str) -> int:
    return sum(ch in _ASCII_DIGITS for ch in text)


def _format_amount(number: Decimal, key: str, prefix: str, suffix: str) -> str:
    number = _non_negative(number, key)
    if number.adjusted() >= AMOUNT_DIGITS_MAX:
        raise UnfittableValue(key, f"金额超过{AMOUNT_DIGITS_MAX}位数字")
    with localcontext() as context:
        context.prec = AMOUNT_DIGITS_MAX + 10
        # Two decimals as money is written, fewer when that is the only way to fit ten digits.
        for places in (2, 1, 0):
            text = format(number.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP), "f")
            if _amount_digits(text) <= AMOUNT_DIGITS_MAX:
                return f"{prefix}{text}{suffix}"
    raise UnfittableValue(key, f"金额超过{AMOUNT_DIGITS_MAX}位数字")


def _valid_amount(text: str) -> bool:
    match = _AMOUNT.fullmatch(text)
    return match is not None and _amount_digits(text) <= AMOUNT_DIGITS_MAX


def _fit_amount(value: object, key: str, tz: tzinfo) -> str:
    number = _numeric(value)
    if number is not None:
        return _format_amount(number, key, "¥", "")
    text = _ascii_fold(_text(value, key, tz))
    compact = text.replace(" ", "").replace(",", "")
    if _valid_amount(compact):
        return compact
    if compact.lstrip(_CURRENCY_SYMBOLS).startswith(("-", "−")):
        raise UnfittableValue(key, "金额不能为负数")
    parts = _digits_and_point(compact)
    if parts is None:
        raise UnfittableValue(key, "金额不含数字")
    whole, fraction = parts
    try:
        number = Decimal(f"{whole}.{fraction or '0'}")
    except InvalidOperation:  # pragma: no cover - digits and a point always parse
        raise UnfittableValue(key, "不是合法的金额") from None
    symbol = next((ch for ch in compact if ch in _CURRENCY_SYMBOLS), "")
    if symbol:
        return _format_amount(number, key, "¥" if symbol == "￥" else symbol, "")
    if "元" in compact:
        return _format_amount(number, key, "", "元")
    return _format_amount(number, key, "¥", "")


# ---------------------------------------------------------------------------------------------
# Time and date
# ---------------------------------------------------------------------------------------------

_TZ = r"(?P<tz>[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)"
_CLOCK = r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,][0-9]+)?)?"
_ISO_DATE = r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
_ISO_DATETIME = re.compile(rf"{_ISO_DATE}(?:[Tt ]{_CLOCK} ?{_TZ}?)?", re.ASCII)
_ISO_CLOCK = re.compile(rf"[Tt]?{_CLOCK} ?{_TZ}?", re.ASCII)

# WeChat's own forms (§3.1): "2019年10月1日", "2019年10月", "10月1日", "2018-01-01", "2018/01/01",
# "2018.01.01", "2018-01", "01-01"; a time "15:01" or "15:01:30"; a date and a time joined by one
# space; a range joined by "~".
_WECHAT_DATE = re.compile(
    r"(?P<y1>[0-9]{4})年(?P<m1>[0-9]{1,2})月(?:(?P<d1>[0-9]{1,2})日)?"
    r"|(?P<m2>[0-9]{1,2})月(?P<d2>[0-9]{1,2})日"
    r"|(?P<y3>[0-9]{4})(?P<sep>[-/.])(?P<m3>[0-9]{2})(?:(?P=sep)(?P<d3>[0-9]{2}))?"
    r"|(?P<m4>[0-9]{2})[-/.](?P<d4>[0-9]{2})",
    re.ASCII,
)
_WECHAT_TIME = re.compile(r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2}))?", re.ASCII)
_RANGE = re.compile(r" ?~ ?")

# Anything else that carries a recognisable date or time, as people type them.
_LOOSE_DATE = re.compile(
    r"(?<![0-9])([0-9]{4}) ?[-/.年] ?([0-9]{1,2}) ?[-/.月] ?([0-9]{1,2})(?![0-9]) ?日?", re.ASCII
)
_LOOSE_TIME = re.compile(r"(?<![0-9])([0-9]{1,2}) ?[:时点點] ?([0-9]{2})(?![0-9])", re.ASCII)
_TWELVE_HOUR = re.compile(r"(?i)(?<![a-z])[ap]\.?m\.?(?![a-z])|上午|下午|中午|晚上|凌晨|早上|傍晚")


def _format_date(value: date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _format_time(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def _format_datetime(value: datetime) -> str:
    return f"{_format_date(value)} {_format_time(value.timetz())}"


def _localize(value: datetime, key: str, tz: tzinfo) -> datetime:
    """An aware datetime in `tz`'s wall clock; a naive one is taken as already in it."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value
    try:
        return value.astimezone(tz)
    except (OverflowError, ValueError):
        raise UnfittableValue(key, "时间超出可表示的范围") from None


def _localize_time(value: time, key: str, tz: tzinfo) -> time:
    if value.tzinfo is None or value.utcoffset() is None:
        return value
    # A clock time alone has no date; any ordinary day converts it the same (no DST in China).
    return _localize(datetime.combine(date(2000, 1, 3), value), key, tz).time()


def _offset(text: str) -> tzinfo:
    if text in "Zz":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0)))


def _parse_iso(text: str, key: str, tz: tzinfo) -> datetime | date | time | None:
    match = _ISO_DATETIME.fullmatch(text) or _ISO_CLOCK.fullmatch(text)
    if match is None:
        return None
    groups = match.groupdict()
    groups.setdefault("y", None)
    try:
        zone = _offset(groups["tz"]) if groups["tz"] else None
        clock = (
            time(int(groups["h"]), int(groups["mi"]), int(groups["s"] or 0), tzinfo=zone)
            if groups["h"]
            else None
        )
        day = date(int(groups["y"]), int(groups["mo"]), int(groups["d"])) if groups["y"] else None
    except ValueError:
        raise UnfittableValue(key, f"不是合法的日期时间：{text}") from None
    if day is not None and clock is not None:
        return _localize(datetime.combine(day, clock), key, tz)
    if clock is not None:
        return _localize_time(clock, key, tz)
    return day


def _valid_wechat_date(text: str) -> bool:
    match = _WECHAT_DATE.fullmatch(text)
    if match is None:
        return False
    g = match.groupdict()
    year = g["y1"] or g["y3"]
    month = g["m1"] or g["m2"] or g["m3"] or g["m4"]
    day = g["d1"] or g["d2"] or g["d3"] or g["d4"]
    try:
        # Without a year any day of a leap year is fine, 2月29日 included.
        date(int(year or 2000), int(month), int(day or 1))
    except ValueError:
        return False
    return True


def _valid_wechat_time(text: str) -> bool:
    match = _WECHAT_TIME.fullmatch(text)
    if match is None:
        return False
    hour, minute, second = match.group("h", "mi", "s")
    return int(hour) < 24 and int(minute) < 60 and int(second or 0) < 60


def _valid_wechat_point(text: str, kind: KeywordType) -> bool:
    first, _, second = text.partition(" ")
    if not second:
        # A time keyword needs a clock. A date range ending on a bare clock
        # ("… 15:01~16:00") is not among WeChat's examples, so it is rebuilt, not passed on.
        if kind is KeywordType.time:
            if _valid_wechat_time(first):
                return True
        return kind is KeywordType.date and _valid_wechat_date(first)
    return " " not in second and _valid_wechat_date(first) and _valid_wechat_time(second)


def _valid_wechat_temporal(text: str, kind: KeywordType) -> bool:
    parts = _RANGE.split(text)
    if len(parts) > 2:
        return False
    return all(_valid_wechat_point(part, kind) for part in parts)


def _parse_loose(text: str, kind: KeywordType, key: str) -> datetime | date | time:
    found_date = _LOOSE_DATE.search(text)
    found_time = _LOOSE_TIME.search(text, found_date.end() if found_date else 0)
    if found_time is not None and _TWELVE_HOUR.search(text):
        raise UnfittableValue(key, "请使用24小时制时间")
    try:
        clock = time(int(found_time.group(1)), int(found_time.group(2))) if found_time else None
        day = date(*(int(part) for part in found_date.groups())) if found_date else None
    except ValueError:
        raise UnfittableValue(key, f"不是合法的日期时间：{text}") from None
    if day is not None and clock is not None:
        return datetime.combine(day, clock)
    if kind is KeywordType.time and clock is not None:
        return clock
    if kind is KeywordType.date and day is not None:
        return day
    what = "时间" if kind is KeywordType.time else "日期"
    raise UnfittableValue(key, f"无法识别{what}：{text}")


def _format_temporal(value: datetime | date | time, kind: KeywordType, key: str) -> str:
    if isinstance(value, datetime):
        return _format_datetime(value)
    if isinstance(value, date):
        if kind is KeywordType.time:
            raise UnfittableValue(key, "时间类型需要具体时刻（时:分）")
        return _format_date(value)
    if kind is KeywordType.date:
        raise UnfittableValue(key, "日期类型需要年月日")
    return _format_time(value)


def _fit_temporal(value: object, kind: KeywordType, key: str, tz: tzinfo) -> str:
    if isinstance(value, datetime):
        return _format_temporal(_localize(value, key, tz), kind, key)
    if isinstance(value, time):
        return _format_temporal(_localize_time(value, key, tz), kind, key)
    if isinstance(value, date):
        return _format_temporal(value, kind, key)
    text = _ascii_fold(_text(value, key, tz))
    if not text:
        # No time given is read as "now", as the cloud function reads it: a notification's
        # time is when it happened, and the message goes out moments after. Text that is
        # there but no time at all ("明天") is still refused: a guess would mislead.
        return _format_temporal(datetime.now(tz), kind, key)
    parsed = _parse_iso(text, key, tz)
    if parsed is not None:
        return _format_temporal(parsed, kind, key)
    if _valid_wechat_temporal(text, kind):
        return text
    return _format_temporal(_parse_loose(text, kind, key), kind, key)


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def fit_value(
    kind: KeywordType,
    value: object,
    *,
    key: str = "",
    tz: tzinfo = SHANGHAI,
    allowed: Collection[str] | None = None,
) -> str:
    """A string WeChat accepts for `kind`, made from any value, or UnfittableValue.

    Nothing left after fitting gives the type's placeholder where it has one (`-`, a phrase
    `无`; a blank time or date is now); a number, amount, plate, letters or enum is refused.

    Aware datetimes are shown in `tz`, naive ones are taken as already in it. `allowed`, when
    given, is the set an `enum` value must belong to.
    """
    match KeywordType(kind):
        case KeywordType.thing:
            return _fit_thing(value, key, tz)
        case KeywordType.name:
            return _fit_name(value, key, tz)
        case KeywordType.phrase:
            return _fit_phrase(value, key, tz)
        case KeywordType.enum:
            return _fit_enum(value, key, tz, allowed)
        case KeywordType.letter:
            return _fit_letter(value, key, tz)
        case KeywordType.symbol:
            return _fit_symbol(value, key, tz)
        case KeywordType.character_string:
            return _fit_character_string(value, key, tz)
        case KeywordType.phone_number:
            return _fit_phone_number(value, key, tz)
        case KeywordType.car_number:
            return _fit_car_number(value, key, tz)
        case KeywordType.number:
            return _fit_number(value, key, tz)
        case KeywordType.amount:
            return _fit_amount(value, key, tz)
        case KeywordType.time | KeywordType.date:
            return _fit_temporal(value, KeywordType(kind), key, tz)


def fit_template_data(
    data: Mapping[str, object],
    *,
    enums: Mapping[str, Collection[str]] | None = None,
    tz: tzinfo = SHANGHAI,
) -> dict[str, dict[str, str]]:
    """WeChat's `{"key": {"value": "..."}}` for template data given raw or already wrapped.

    Each key's prefix names its keyword type; `enums` holds the allowed values of enum keys.
    Raises UnfittableValue naming the first key whose value cannot be fitted.
    """
    fitted: dict[str, dict[str, str]] = {}
    for key, raw in data.items():
        if not isinstance(key, str):
            raise UnfittableValue(str(key), "字段名必须是字符串")
        kind = keyword_type(key)
        value = raw
        if isinstance(raw, Mapping):
            if "value" not in raw:
                raise UnfittableValue(key, "缺少 value")
            value = raw["value"]
        allowed = enums.get(key) if enums is not None else None
        fitted[key] = {"value": fit_value(kind, value, key=key, tz=tz, allowed=allowed)}
    return fitted
