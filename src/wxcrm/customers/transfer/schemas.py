"""Wire shapes of import and export (the files themselves are described in the router)."""

from __future__ import annotations

from pydantic import Field

from wxcrm.customers.schemas import OutModel


class ImportResultOut(OutModel):
    imported: int = Field(description="导入的客户数")
