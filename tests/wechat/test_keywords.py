"""Every fitted value keeps its keyword type's rule, so no 47003 is earned.

The rule checks below are written from the document, not from the fitting code, and the
property tests hold each keyword type to them over arbitrary input.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wxcrm.wechat.keywords import (
    KeywordType,
    UnfittableValue,
    fit_template_data,
    fit_value,
    keyword_type,
)

K = KeywordType

# ---------------------------------------------------------------------------------------------
# The rules of §3.1, as an oracle
# ---------------------------------------------------------------------------------------------


def is_chinese(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith(
        ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH")
    )


def is_emoji(ch: str) -> bool:
    cp = ord(ch)
    return 0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or 0xFE00 <= cp <= 0xFE0F


def plain_text(value: str) -> bool:
    """Text WeChat takes at all: something there, no controls, no emoji, no stray spaces."""
    return (
        bool(value)
        and value == value.strip()
        and "  " not in value
        and all(
            unicodedata.category(ch)[0] != "C"
            and not is_emoji(ch)
            and (ch == " " or not ch.isspace())
            and (ord(ch) <= 0xFFFF or is_chinese(ch))
            for ch in value
        )
    )


_DATE_TOKEN = (
    r"[0-9]{4}年[0-9]{1,2}月[0-9]{1,2}日|[0-9]{4}年[0-9]{1,2}月|[0-9]{1,2}月[0-9]{1,2}日"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}/[0-9]{2}/[0-9]{2}|[0-9]{4}\.[0-9]{2}\.[0-9]{2}"
    r"|[0-9]{4}[-/.][0-9]{2}|[0-9]{2}[-/.][0-9]{2}"
)
_CLOCK_TOKEN = r"[0-9]{2}:[0-9]{2}(?::[0-9]{2})?"
_TIME_POINT = rf"(?:(?:{_DATE_TOKEN}) )?{_CLOCK_TOKEN}"
_DATE_POINT = rf"(?:{_DATE_TOKEN})(?: {_CLOCK_TOKEN})?"
TIME_RULE = re.compile(rf"{_TIME_POINT}(?: ?~ ?{_TIME_POINT})?")
DATE_RULE = re.compile(rf"{_DATE_POINT}(?: ?~ ?(?:{_DATE_POINT}|{_CLOCK_TOKEN}))?")


def real_calendar(value: str) -> bool:
    """Each clock a real 24-hour time, each date a real day."""
    for hour, minute, second in re.findall(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?", value):
        if int(hour) > 23 or int(minute) > 59 or int(second or 0) > 59:
            return False
    without_clocks = re.sub(_CLOCK_TOKEN, "", value)
    for token in re.findall(_DATE_TOKEN, without_clocks):
        numbers = [int(n) for n in re.findall(r"[0-9]+", token)]
        if "年" in token or len(numbers) == 3:
            year, month, day = [*numbers, 1][:3]
        elif len(re.match(r"[0-9]+", token).group()) == 4:  # type: ignore[union-attr]
            year, month, day = numbers[0], numbers[1], 1
        else:
            year, month, day = 2000, numbers[0], numbers[1]
        try:
            date(year, month, day)
        except ValueError:
            return False
    return True


def amount_ok(value: str) -> bool:
    shape = re.fullmatch(r"[¥￥$€£][0-9]+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?元", value)
    return shape is not None and sum(ch.isdigit() for ch in value) <= 10


def car_number_ok(value: str) -> bool:
    if not 1 <= len(value) <= 8:
        return False
    plate = re.compile(r"[A-Za-z0-9]")
    inner = value[1:-1] if len(value) > 1 else ""
    ends = [value[0], value[-1]]
    return all(plate.fullmatch(ch) for ch in inner) and all(
        plate.fullmatch(ch) or is_chinese(ch) for ch in ends
    )


def name_ok(value: str) -> bool:
    if any(is_chinese(ch) for ch in value):
        return len(value) <= 10  # mixed Chinese and Latin counts as Chinese
    return len(value) <= 20 and all(
        ch == " " or unicodedata.category(ch)[0] in "LMPS" for ch in value
    )


RULES: dict[KeywordType, Callable[[str], bool]] = {
    K.thing: lambda v: len(v) <= 20,
    K.name: name_ok,
    K.phrase: lambda v: 1 <= len(v) <= 5 and all(is_chinese(ch) for ch in v),
    K.number: lambda v: (
        re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", v) is not None
        and len(v) <= 32
        and sum(ch.isdigit() for ch in v) <= 32
    ),
    K.letter: lambda v: re.fullmatch(r"[A-Za-z]{1,32}", v) is not None,
    K.symbol: lambda v: (
        1 <= len(v) <= 5
        and all(unicodedata.category(ch)[0] in "PS" and not is_chinese(ch) for ch in v)
    ),
    K.character_string: lambda v: re.fullmatch(r"[\x21-\x7e]{1,32}", v) is not None,
    K.time: lambda v: TIME_RULE.fullmatch(v) is not None and real_calendar(v),
    K.date: lambda v: DATE_RULE.fullmatch(v) is not None and real_calendar(v),
    K.amount: amount_ok,
    # Digits and symbols (§3.1); a bare "-" marks no number, as on a Chinese form.
    K.phone_number: lambda v: (
        re.fullmatch(r"[0-9+\-()]{1,17}", v) is not None
        and (any(ch.isdigit() for ch in v) or v == "-")
    ),
    K.car_number: car_number_ok,
    K.enum: lambda v: True,
}


def assert_valid(kind: KeywordType, value: str) -> None:
    assert plain_text(value), f"{kind}: {value!r} is not plain text"
    assert RULES[kind](value), f"{kind}: {value!r} breaks the type's rule"


def test_every_keyword_type_has_a_rule() -> None:
    assert set(RULES) == set(KeywordType)
    assert len(KeywordType) == 13


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("thing1", K.thing),
        ("time2", K.time),
        ("name3", K.name),
        ("character_string3", K.character_string),
        ("phone_number12", K.phone_number),
        ("car_number2", K.car_number),
        ("phrase4", K.phrase),
        ("number01", K.number),
        ("letter6", K.letter),
        ("symbol7", K.symbol),
        ("date8", K.date),
        ("amount10", K.amount),
        ("enum11", K.enum),
    ],
)
def test_a_keys_prefix_is_its_keyword_type(key: str, kind: KeywordType) -> None:
    assert keyword_type(key) is kind


@pytest.mark.parametrize("key", ["thing", "colour1", "1thing", "thing1 ", "Thing1", "", "time_2"])
def test_a_key_without_a_known_type_and_digits_is_refused(key: str) -> None:
    with pytest.raises(UnfittableValue) as caught:
        keyword_type(key)
    assert caught.value.key == key


# ---------------------------------------------------------------------------------------------
# Examples, type by type
# ---------------------------------------------------------------------------------------------


def fit(kind: KeywordType, value: object) -> str:
    fitted = fit_value(kind, value, key=f"{kind}1")
    assert_valid(kind, fitted)
    return fitted


def test_the_seeds_data_comes_out_as_it_went_in_but_for_the_seconds() -> None:
    data = {
        "thing1": {"value": "客户张三查看了您的简历"},
        "time2": {"value": "2024-01-01 12:00:00"},
        "thing3": {"value": "13800138000"},
        "thing7": {"value": "张三"},
    }
    assert fit_template_data(data) == {
        "thing1": {"value": "客户张三查看了您的简历"},
        "time2": {"value": "2024-01-01 12:00"},
        "thing3": {"value": "13800138000"},
        "thing7": {"value": "张三"},
    }


def test_template_data_takes_raw_values_too() -> None:
    moment = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    data = {"thing1": "张三", "time2": moment, "phone_number3": 13800138000, "name4": "张三"}
    assert fit_template_data(data) == {
        "thing1": {"value": "张三"},
        "time2": {"value": "2024-01-01 20:00"},
        "phone_number3": {"value": "13800138000"},
        "name4": {"value": "张三"},
    }


def test_template_data_names_the_first_unfittable_key() -> None:
    with pytest.raises(UnfittableValue) as caught:
        fit_template_data({"thing1": "好", "number2": {"value": "无"}, "time3": "不是时间"})
    assert caught.value.key == "number2"
    assert "number2" in caught.value.message


@pytest.mark.parametrize(
    "data",
    [{"colour1": "红"}, {"thing1": {"color": "#000"}}, {"thing": "x"}],
)
def test_template_data_refuses_unknown_keys_and_unwrapped_shapes(data: dict[str, object]) -> None:
    with pytest.raises(UnfittableValue):
        fit_template_data(data)


def test_template_data_checks_enum_values_against_their_range() -> None:
    enums = {"enum1": {"已完成", "进行中"}}
    assert fit_template_data({"enum1": " 已完成 "}, enums=enums) == {"enum1": {"value": "已完成"}}
    with pytest.raises(UnfittableValue, match="已完成"):
        fit_template_data({"enum1": "已取消"}, enums=enums)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("客户张三查看了您的简历", "客户张三查看了您的简历"),
        ("13800138000", "13800138000"),
        ("新客户预约了您的服务，请尽快联系客户确认时间", "新客户预约了您的服务，请尽快联系客户确…"),
        ("a" * 21, "a" * 19 + "…"),
        ("a" * 20, "a" * 20),
        ("客户\n张三\t查看😀了\u200b您的简历", "客户 张三 查看了您的简历"),
        ("  两个   空格  ", "两个 空格"),
        (12, "12"),
        (0.1, "0.1"),
        (Decimal("1.50"), "1.50"),
        (date(2024, 1, 1), "2024-01-01"),
        (datetime(2024, 1, 1, 4, 0, tzinfo=UTC), "2024-01-01 12:00"),
    ],
)
def test_thing(value: object, expected: str) -> None:
    assert fit(K.thing, value) == expected


@pytest.mark.parametrize("value", [None, "", "   ", "\n\t", "😀👍🏻", "\u200b\u200d", "\x00\x07"])
def test_a_thing_with_nothing_left_is_a_dash(value: object) -> None:
    # WeChat refuses an empty thing (47003): the message goes with "-" rather than not at all.
    assert fit(K.thing, value) == "-"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("张三", "张三"),
        ("张 三", "张 三"),
        ("欧阳娜娜娜娜娜娜娜娜娜", "欧阳娜娜娜娜娜娜娜…"),
        ("John Smith", "John Smith"),
        ("Bartholomew Longname-Smythe", "Bartholomew Longnam…"),
        ("张三Zhang San Smith", "张三Zhang S…"),  # mixed counts as Chinese
        ("张三2号", "张三号"),  # a name is letters or symbols, not digits
    ],
)
def test_name(value: str, expected: str) -> None:
    assert fit(K.name, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("配送中", "配送中"),
        ("邀请金到账提醒", "邀请金到账"),
        ("略略略略略略", "略略略略略"),
        ("已 完成!", "已完成"),
        ("VIP客户", "客户"),
    ],
)
def test_phrase(value: str, expected: str) -> None:
    assert fit(K.phrase, value) == expected


def test_a_phrase_without_chinese_is_wu() -> None:
    assert fit(K.phrase, "done!") == "无"


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (K.time, "2024-01-01 12:00:00"),
        (K.time, "2024-01-01T12:00:00.000Z"),
        (K.time, "15:01"),
        (K.time, "2019年10月1日 15:01"),
        (K.date, "2019年10月1日"),
        (K.date, "2024-01-01"),
        (K.amount, "100元"),
        (K.amount, 100.5),
        (K.phone_number, "+86-0766-66888866"),
        (K.car_number, "粤A8Z888挂"),
    ],
)
def test_wechats_own_examples_fit(kind: KeywordType, value: object) -> None:
    fitted = fit(kind, value)
    assert fit(kind, fitted) == fitted


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-01 12:00:00", "2024-01-01 12:00"),
        ("2024-01-01T12:00:00.000Z", "2024-01-01 20:00"),  # the seed's timestamps are UTC
        ("2024-01-01T12:00:00+08:00", "2024-01-01 12:00"),
        ("2023-12-31T23:30:00-05:00", "2024-01-01 12:30"),
        ("2024-01-01T12:00", "2024-01-01 12:00"),
        ("15:01", "15:01"),
        ("15:01:59", "15:01"),
        ("9:05", "09:05"),
        ("2019年10月1日 15:01", "2019年10月1日 15:01"),
        ("2019年10月1日15点30分", "2019-10-01 15:30"),
        ("2024/1/1 9:05", "2024-01-01 09:05"),
        ("２０２４－０１－０１　１２：００", "2024-01-01 12:00"),
        ("2024-01-01 12:00~13:00", "2024-01-01 12:00~13:00"),
        ("预约时间：2024-01-02 14:00", "2024-01-02 14:00"),
        (datetime(2024, 1, 1, 12, 0, 59), "2024-01-01 12:00"),
        (datetime(2024, 1, 1, 4, 0, tzinfo=UTC), "2024-01-01 12:00"),
        (time(8, 5, 30), "08:05"),
        (time(0, 30, tzinfo=UTC), "08:30"),
    ],
)
def test_time(value: object, expected: str) -> None:
    assert fit(K.time, value) == expected


def test_time_in_another_zone() -> None:
    moment = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    assert fit_value(K.time, moment, tz=ZoneInfo("Europe/Paris")) == "2024-07-01 14:00"


@pytest.mark.parametrize(
    "value",
    [
        "明天",
        "2024-01-01",  # a date with no time of day
        date(2024, 1, 1),
        "下午3:00",  # 12-hour clock: 15:00 or 03:00 can't be told apart safely
        "3:00 PM",
        "25:00",
        "2024-02-30 12:00",
        "2024-13-01T00:00:00Z",
        1704110400,
    ],
)
def test_a_time_with_no_parseable_time_is_unfittable(value: object) -> None:
    with pytest.raises(UnfittableValue):
        fit_value(K.time, value, key="time2")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (date(2024, 1, 1), "2024-01-01"),
        (datetime(2024, 1, 1, 12, 30), "2024-01-01 12:30"),
        ("2024-01-01", "2024-01-01"),
        ("2024-01-01T12:00:00.000Z", "2024-01-01 20:00"),
        ("2019年10月1日", "2019年10月1日"),
        ("2018/01/01", "2018/01/01"),
        ("2018.01", "2018.01"),
        ("10月1日", "10月1日"),
        ("2019年10月1日~2019年10月7日", "2019年10月1日~2019年10月7日"),
        ("2024/1/5", "2024-01-05"),
    ],
)
def test_date(value: object, expected: str) -> None:
    assert fit(K.date, value) == expected


@pytest.mark.parametrize("value", ["15:01", time(15, 1), "2月30日", "不是日期"])
def test_an_unfittable_date(value: object) -> None:
    with pytest.raises(UnfittableValue):
        fit_value(K.date, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "42"),
        (3.5, "3.5"),
        (1e20, "100000000000000000000"),
        (Decimal("1.50"), "1.50"),
        (Decimal("1E+3"), "1000"),
        (Decimal("1E-100"), "0"),
        (-0.0, "0.0"),
        ("1,234.56", "1234.56"),
        ("共 12 件", "12"),
        ("007", "007"),
        ("1.2.3", "1.23"),
        ("1" * 20 + "." + "2" * 20, "1" * 20 + "." + "2" * 11),
    ],
)
def test_number(value: object, expected: str) -> None:
    assert fit(K.number, value) == expected


@pytest.mark.parametrize(
    "value", ["abc", "", None, -1, Decimal("-0.5"), "-3", float("nan"), float("inf"), 10**40]
)
def test_an_unfittable_number(value: object) -> None:
    with pytest.raises(UnfittableValue):
        fit_value(K.number, value)


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (K.letter, "abc123ＤＥＦ", "abcDEF"),
        (K.letter, "x" * 40, "x" * 32),
        (K.symbol, "a!@#$%^&", "!@#$%"),
        (K.symbol, "★ ~ ！", "~！"),
        (K.character_string, "订单 ABC-123", "ABC-123"),
        (K.character_string, "ＮＯ．２０２４", "NO.2024"),
        (K.character_string, "A" * 40, "A" * 32),
        (K.character_string, 20240101001, "20240101001"),
        (K.phone_number, "13800138000", "13800138000"),
        (K.phone_number, "138 0013 8000", "13800138000"),
        (K.phone_number, "电话：(0766) 6688-8866", "(0766)6688-8866"),
        (K.phone_number, 13800138000, "13800138000"),
        (K.phone_number, 13800138000.0, "13800138000"),
        (K.phone_number, "+86-0766-66888866-12345", "+86-0766-66888866"),
        (K.car_number, "粤a·8z888挂", "粤A8Z888挂"),
        (K.car_number, "京A 12345", "京A12345"),
        (K.car_number, "京A12中345", "京A12345"),
        (K.car_number, "粤B123456789挂", "粤B12345挂"),
        (K.amount, 100.5, "¥100.50"),
        (K.amount, 100, "¥100.00"),
        (K.amount, Decimal("0.005"), "¥0.01"),
        (K.amount, "100元", "100元"),
        (K.amount, "¥100.50", "¥100.50"),
        (K.amount, "￥ 1,234.5", "￥1234.5"),
        (K.amount, "人民币1234.5元", "1234.50元"),
        (K.amount, "USD $20", "$20.00"),
        (K.amount, "价格 99", "¥99.00"),
        (K.amount, 123456789.5, "¥123456789.5"),
        (K.enum, "  已完成 ", "已完成"),
    ],
)
def test_restricted_types(kind: KeywordType, value: object, expected: str) -> None:
    assert fit(kind, value) == expected


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (K.letter, "12345"),
        (K.car_number, "粤"),
        (K.car_number, "---"),
        (K.amount, "免费"),
        (K.amount, -5),
        (K.amount, "-5元"),
        (K.amount, 10**11),
        (K.amount, float("nan")),
        (K.enum, " "),
    ],
)
def test_unfittable_restricted_values(kind: KeywordType, value: object) -> None:
    with pytest.raises(UnfittableValue):
        fit_value(kind, value, key=f"{kind}1")


# ---------------------------------------------------------------------------------------------
# Nothing left after fitting: a placeholder where the type has a neutral value
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (K.thing, "😀😀", "-"),
        (K.thing, "\u200b\u200b", "-"),
        (K.name, "😀😀", "-"),
        (K.name, "\u200b\u200b", "-"),
        (K.name, "", "-"),
        (K.name, None, "-"),
        (K.name, "2024", "-"),  # digits are no part of a name
        (K.name, "-", "-"),
        (K.phrase, "", "无"),
        (K.phrase, "😀", "无"),
        (K.phone_number, "", "-"),
        (K.phone_number, "已隐藏", "-"),
        (K.phone_number, "未留电话", "-"),
        (K.phone_number, "()", "-"),
        (K.symbol, "abc 123 中文", "-"),
        (K.symbol, "", "-"),
        (K.character_string, "中文", "-"),
        (K.character_string, "😀", "-"),
    ],
)
def test_a_value_with_nothing_left_is_the_types_placeholder(
    kind: KeywordType, value: object, expected: str
) -> None:
    assert fit(kind, value) == expected
    assert fit(kind, expected) == expected  # and the placeholder stays itself


@pytest.mark.parametrize("kind", [K.time, K.date])
@pytest.mark.parametrize("value", ["", None, "  ", "😀", "\u200b"])
def test_a_blank_time_is_the_moment_of_fitting(kind: KeywordType, value: object) -> None:
    shanghai = timezone(timedelta(hours=8))
    before = datetime.now(shanghai).strftime("%Y-%m-%d %H:%M")
    fitted = fit(kind, value)
    after = datetime.now(shanghai).strftime("%Y-%m-%d %H:%M")
    assert fitted in {before, after}


@pytest.mark.parametrize(
    "kind", [K.number, K.amount, K.letter, K.car_number, K.enum], ids=lambda kind: kind.value
)
@pytest.mark.parametrize("value", ["", "😀😀", "\u200b\u200b"])
def test_a_type_whose_every_value_says_something_still_refuses_a_blank(
    kind: KeywordType, value: str
) -> None:
    # A 0, ¥0.00 or a made-up plate would be false; the refusal names the key instead.
    with pytest.raises(UnfittableValue) as caught:
        fit_value(kind, value, key=f"{kind}1")
    assert caught.value.key == f"{kind}1"


def test_a_leads_message_with_an_emoji_only_name_is_sendable() -> None:
    data = {
        "thing1": "新客户查看了您的简历",
        "time2": "2024-01-01T12:00:00.000Z",
        "thing3": "13800138000",
        "thing7": "😀😀",
        "name8": "\u200b\u200b",
        "phone_number9": "已隐藏",
    }
    assert fit_template_data(data) == {
        "thing1": {"value": "新客户查看了您的简历"},
        "time2": {"value": "2024-01-01 20:00"},
        "thing3": {"value": "13800138000"},
        "thing7": {"value": "-"},
        "name8": {"value": "-"},
        "phone_number9": {"value": "-"},
    }


def test_an_enum_outside_its_range_is_unfittable() -> None:
    assert fit_value(K.enum, "进行中", allowed={"进行中"}) == "进行中"
    with pytest.raises(UnfittableValue):
        fit_value(K.enum, "已取消", allowed={"进行中"})


def test_the_kind_may_be_given_as_its_name() -> None:
    assert fit_value("thing", "张三") == "张三"  # type: ignore[arg-type]


def test_any_object_is_taken_by_its_text() -> None:
    class Title:
        def __str__(self) -> str:
            return "客户查看了您的简历"

    assert fit(K.thing, Title()) == "客户查看了您的简历"


def test_the_error_is_a_value_error_with_a_chinese_message() -> None:
    error = UnfittableValue("phrase4", "值为空")
    assert isinstance(error, ValueError)
    assert error.key == "phrase4"
    assert error.message == str(error) == "模板字段 phrase4：值为空"


# ---------------------------------------------------------------------------------------------
# Properties over arbitrary input
# ---------------------------------------------------------------------------------------------

_TRICKY = list(
    "张三客户查看了您的简历预约粤京挂年月日时点分上午 \n\t\r\x00\x1b\x7f\u200b\u200d\u2028\ufeff"
    "\u3000\xa0😀👍🏻❤️\ufe0f★✓①１２Ａｚ：－:-/.~～¥￥$元0123456789abcXYZ!@#()+…,，。\u0301𠮷"
)
_tricky_text = st.text(alphabet=st.sampled_from(_TRICKY), max_size=40)
_any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=60)
_long_text = st.text(min_size=40, max_size=400)

_moments = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.timezones()
)
_moment_text = st.builds(
    lambda moment, pattern, noise: noise + moment.strftime(pattern),
    st.datetimes(min_value=datetime(1000, 1, 1)),
    st.sampled_from(
        [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S.000Z",
            "%Y-%m-%dT%H:%M:%S+08:00",
            "%Y-%m-%d",
            "%H:%M",
            "%H:%M:%S",
            "%Y年%m月%d日 %H:%M",
            "%Y年%m月%d日",
            "%m月%d日",
            "%Y/%m/%d %H:%M",
            "%Y.%m.%d",
            "%Y-%m",
            "%m-%d",
            "%Y-%m-%d %H:%M~%H:%M",
            "%Y年%m月%d日~%Y年%m月%d日",
        ]
    ),
    st.sampled_from(["", "", "", " ", "时间：", "\n", "约"]),
)
_number_text = st.builds(
    lambda prefix, number, suffix: f"{prefix}{number}{suffix}",
    st.sampled_from(["", "¥", "￥", "$", "-", "共", " "]),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "元", " 元", "件", "%"]),
)

any_value = st.one_of(
    _tricky_text,
    _any_text,
    _long_text,
    _moment_text,
    _number_text,
    st.integers(),
    st.floats(),
    st.decimals(),
    st.datetimes(),
    _moments,
    st.dates(),
    st.times(timezones=st.none() | st.timezones()),
    st.none(),
    st.booleans(),
)


@pytest.mark.parametrize("kind", list(KeywordType))
@settings(max_examples=300, deadline=None)
@given(value=any_value)
def test_a_fitted_value_keeps_its_types_rule_and_fits_again_unchanged(
    kind: KeywordType, value: object
) -> None:
    try:
        fitted = fit_value(kind, value, key="k1")
    except UnfittableValue as refused:
        assert refused.key == "k1"
        assert refused.message
        return
    assert_valid(kind, fitted)
    assert fit_value(kind, fitted, key="k1") == fitted


@settings(max_examples=100, deadline=None)
@given(
    moment=st.datetimes(  # China has kept +08:00 without daylight saving since 1991
        min_value=datetime(1992, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.timezones()
    )
)
def test_an_aware_datetime_is_shown_in_shanghai_time(moment: datetime) -> None:
    local = moment.astimezone(timezone(timedelta(hours=8)))
    assert fit_value(K.time, moment) == local.strftime("%Y-%m-%d %H:%M")
    assert fit_value(K.date, moment) == local.strftime("%Y-%m-%d %H:%M")


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("张三客户查看简历abcXYZ019!?-·")), max_size=20))
def test_short_clean_text_is_a_thing_as_it_is(text: str) -> None:
    if text.strip():
        assert fit_value(K.thing, text.strip()) == text.strip()


@settings(max_examples=300, deadline=None)
@given(number=st.decimals(min_value=0, max_value=Decimal("99999999.99"), places=2))
def test_an_amount_keeps_its_value_to_the_fen(number: Decimal) -> None:
    fitted = fit_value(K.amount, number)
    assert fitted.startswith("¥")
    assert Decimal(fitted[1:]) == number
