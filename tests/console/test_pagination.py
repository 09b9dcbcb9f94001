"""The pagination under a list says how many there are, or, past a text search's bound,
that there are more than it read (no browser: the macro rendered alone)."""

from __future__ import annotations

from wxcrm.console.listing import ListQuery
from wxcrm.console.templating import environment

MACRO = "{% from '_pagination.html' import pagination %}{{ pagination(query, pager) }}"


def rendered(total: int, *, at_least: bool) -> str:
    query = ListQuery(path="/customers", values={"search": "王"})
    return environment.from_string(MACRO).render(
        query=query, pager=query.pager(total, at_least=at_least)
    )


def test_an_exact_total_is_counted() -> None:
    html = rendered(25, at_least=False)
    assert "共 25 条" in html and "超过" not in html


def test_a_bounded_total_says_more_than_it_read() -> None:
    html = rendered(1_001, at_least=True)
    assert "超过 1000 条" in html and "共 1001 条" not in html
    assert "下一页" in html  # the pages go on past the bound
