"""One normal form for mainland mobile numbers, however they were typed."""

from __future__ import annotations

import pytest

from wxcrm.core.phones import normalize_phone


@pytest.mark.parametrize(
    "typed",
    [
        "13800138000",
        "138 0013 8000",
        "138-0013-8000",
        "+86 138 0013 8000",
        "8613800138000",
        "(+86)13800138000",
        "１３８００１３８０００",  # a Chinese input method's full-width digits
        "＋８６ １３８－００１３－８０００",
    ],
)
def test_the_ways_people_type_a_mobile_number(typed: str) -> None:
    assert normalize_phone(typed) == "13800138000"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "1380013800",  # ten digits
        "12800138000",  # no mobile starts 12
        "138001380001",
        "1380013800a",
        "١٣٨٠٠١٣٨٠٠٠",  # digits, but not ones a phone number is written in here
        "138\u00a00013\u200b8000",  # a zero-width space is no separator
    ],
)
def test_what_is_not_a_mainland_mobile(typed: str) -> None:
    assert normalize_phone(typed) is None
