"""Page-number pagination, as the original system's lists (`page`, `limit`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Generic, Self, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

T = TypeVar("T")


class PageParams(BaseModel):
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def page_params(
    page: Annotated[int, Query(ge=1, le=100_000, description="页码，从 1 开始")] = 1,
    limit: Annotated[int, Query(ge=1, le=200, description="每页条数")] = 20,
) -> PageParams:
    return PageParams(page=page, limit=limit)


PageDep = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    """One page of a list: `{items, total, page, limit, totalPages}`."""

    items: list[T]
    total: int = Field(description="符合条件的总数")
    page: int = Field(description="页码，从 1 开始")
    limit: int = Field(description="每页条数")
    total_pages: int = Field(serialization_alias="totalPages", description="总页数")

    @classmethod
    def of(cls, items: Sequence[T], total: int, params: PageParams) -> Self:
        """Call it on the parametrized class, `Page[ItemOut].of(...)`, the response model."""
        return cls(
            items=list(items),
            total=total,
            page=params.page,
            limit=params.limit,
            total_pages=(total + params.limit - 1) // params.limit,
        )
