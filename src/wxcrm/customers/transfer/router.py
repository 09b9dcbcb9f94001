"""Import and export of customers as CSV or XLSX, and the import template.

Included before the records router: `/api/customers/export` must not be taken for a
customer id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import Response

from wxcrm.core.db import SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.envelope import Envelope
from wxcrm.customers.records.deps import FiltersDep
from wxcrm.customers.transfer import service
from wxcrm.customers.transfer.download import export_download, template_download
from wxcrm.customers.transfer.schemas import ImportResultOut
from wxcrm.customers.transfer.service import MEDIA_TYPES, FileFormat
from wxcrm.users.deps import CurrentManager, CurrentUser

router = APIRouter(prefix="/api/customers", tags=["customers"])

FormatQuery = Annotated[FileFormat, Query(alias="format", description="文件格式：csv 或 xlsx")]


def _file_answer(description: str) -> dict[int | str, dict[str, Any]]:
    """A download's 200 in OpenAPI: a file of either format, as an attachment."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        200: {
            "description": description,
            "content": {media_type.split(";")[0]: binary for media_type in MEDIA_TYPES.values()},
            "headers": {
                "Content-Disposition": {
                    "description": "attachment，filename* 为中文文件名（RFC 6266）",
                    "schema": {"type": "string"},
                }
            },
        }
    }


@router.post("/import")
async def import_customers(
    file: Annotated[UploadFile, File(description="客户表格：.csv（UTF-8 或 GBK）或 .xlsx")],
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentManager,
) -> Envelope[ImportResultOut]:
    """Import customers from a CSV or XLSX file: every row, or none and a per-row report."""
    count, sheet = await service.import_file(
        session, settings, user, file.filename or "", file.read
    )
    return Envelope[ImportResultOut](
        data=ImportResultOut(imported=count), message=f"导入成功：共 {count} 个客户{sheet.note()}"
    )


@router.get("/export", response_class=Response, responses=_file_answer("客户表格（CSV 或 XLSX）"))
async def export_customers(
    session: SessionDep, user: CurrentUser, filters: FiltersDep, kind: FormatQuery = FileFormat.csv
) -> Response:
    """Download the customers the caller may see, with the list's filters, as CSV or XLSX."""
    return export_download(await service.export_file(session, user, filters, kind), kind)


@router.get(
    "/import-template",
    response_class=Response,
    responses=_file_answer("导入模板（CSV 或 XLSX）：表头和一行示例"),
)
async def import_template(
    settings: SettingsDep, user: CurrentUser, kind: FormatQuery = FileFormat.csv
) -> Response:
    """Download the import template: the column headers and one example row."""
    return template_download(service.build_template(settings, kind), kind)
