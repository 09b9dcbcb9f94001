"""A phone typed with a Chinese input method's full-width digits finds its customer, in the
customer list's search and in the staff mini program's."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.customers.conftest import Team
from tests.customers.staffapp.test_list import names
from tests.customers.test_customers import list_names
from tests.factories import add_customer


@pytest.mark.parametrize(
    "typed",
    [
        "１３８１１１１",  # the start of the phone, full width
        "１３８ １１１１ ２２２２",  # all of it, grouped as people say it
        "１３８-１１１１",
    ],
)
async def test_full_width_digits_find_the_phone(
    client: httpx.AsyncClient, session: AsyncSession, team: Team, typed: str
) -> None:
    await add_customer(session, team.advisor, name="张三", phone="13811112222")
    await add_customer(session, team.advisor, name="李四", phone="13922223333")
    headers = team.headers("manager")
    assert await list_names(client, headers, search=typed) == ["张三"]
    assert await names(client, headers, search=typed) == ["张三"]


async def test_the_mini_programs_search_still_finds_text_as_typed(
    client: httpx.AsyncClient, session: AsyncSession, team: Team
) -> None:
    # A WeChat id with a dash is found by what was typed, not only by its digits.
    await add_customer(session, team.advisor, name="王五", phone="13700001111", wechat_id="wx-138")
    await add_customer(session, team.advisor, name="赵六", phone="13811112222")
    headers = team.headers("manager")
    assert await names(client, headers, search="x-138") == ["王五"]
    assert sorted(await names(client, headers, search="-138")) == ["王五", "赵六"]
