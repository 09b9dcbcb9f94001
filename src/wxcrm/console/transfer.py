"""导入导出: the import template, check-then-confirm import with progress, export.

An upload is checked by the import's own rules (`check_file`) and nothing is written for
it unless every row passes; a clean file is kept server-side (`pending_imports`) so that
确认导入 needs no second upload and any of the app's processes can answer the confirm and
the progress polls. Managers and admins only, as the API's import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse
from starlette.datastructures import UploadFile

from wxcrm.console.display import beijing
from wxcrm.console.listing import check_choices, customer_choices, read_dates
from wxcrm.console.routing import console_router, done, object_id, render_page
from wxcrm.console.session import ConsoleUser
from wxcrm.console.templating import render
from wxcrm.core.db import DatabaseDep, SessionDep
from wxcrm.core.deps import SettingsDep
from wxcrm.core.errors import AppError, BadRequest, Forbidden, RateLimited
from wxcrm.core.settings import Settings
from wxcrm.customers.records.filters import CustomerFilters
from wxcrm.customers.transfer import pending as pending_imports
from wxcrm.customers.transfer import service
from wxcrm.customers.transfer.download import export_download, template_download
from wxcrm.customers.transfer.models import ImportStage, ImportStatus, PendingImport
from wxcrm.customers.transfer.service import MAX_IMPORT_BYTES, CheckReport, FileFormat
from wxcrm.users.models import User

MANAGERS_ONLY = "只有经理和管理员可以导入导出客户"
FILE_FIELD = "file"
NO_FILE = "请选择要导入的文件（.csv 或 .xlsx）"
TOO_LARGE = f"文件过大，最大允许 {MAX_IMPORT_BYTES // (1024 * 1024)} MB，请拆分后再导入"
STATUS_ID = "import-status"
# The export's filters: the list's query names, what the form calls them.
EXPORT_CHOICES = {
    "leadSource": "线索来源",
    "serviceCategory": "服务类别",
    "contractStatus": "签约状态",
    "leadLevel": "线索等级",
}
EXPORT_NAMES = (*EXPORT_CHOICES, "createdFrom", "createdTo")

router = console_router()


async def console_manager(user: ConsoleUser) -> User:
    """The signed-in manager or admin; an advisor gets the 403 page, as from the API."""
    if not user.is_staff_manager:
        raise Forbidden(MANAGERS_ONLY)
    return user


ConsoleManager = Annotated[User, Depends(console_manager)]


@dataclass
class UploadForm:
    """The upload's refusal (beside the file field) and the check's report, if any."""

    error: str | None = None
    filename: str = ""
    report: CheckReport | None = None


@dataclass
class ExportForm:
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@router.get("/import")
async def transfer_page(request: Request, user: ConsoleManager, settings: SettingsDep) -> Response:
    """导入导出: the template, the upload and the export."""
    return _page(request, settings, user, UploadForm(), ExportForm())


@router.post("/import")
async def check_upload(
    request: Request, user: ConsoleManager, session: SessionDep, settings: SettingsDep
) -> Response:
    """Check an upload: its report if any row fails (nothing kept), else it is kept for a
    confirm and the browser goes to it. A refused file says why beside the file field."""
    upload = (await request.form()).get(FILE_FIELD)
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _refused(request, settings, user, NO_FILE)
    filename = upload.filename
    try:
        service.file_format(filename)
        content = await upload.read(MAX_IMPORT_BYTES + 1)
        if not content:
            raise BadRequest("文件为空，请选择填好客户数据的文件")
        if len(content) > MAX_IMPORT_BYTES:
            raise BadRequest(TOO_LARGE)
        report = await service.check_file(session, settings, filename, content)
    except AppError as refused:
        # An unusable file (format, size, no header …), or another import in this process.
        status = refused.status_code if isinstance(refused, RateLimited) else 400
        return _refused(request, settings, user, refused.message, filename, status)
    if not report.clean:
        form = UploadForm(filename=filename, report=report)
        return _page(request, settings, user, form, ExportForm(), status_code=422)
    kept = await pending_imports.stash(session, user, filename, content, report)
    return done(request, f"/import/{kept.id}", f"检查通过：{report.rows} 行数据均可导入")


@router.get("/import/template")
async def import_template(
    user: ConsoleManager, settings: SettingsDep, format: str = "csv"
) -> Response:
    """The import template: the headers and one example row that imports as it is."""
    kind = _kind(format)
    return template_download(service.build_template(settings, kind), kind)


@router.get("/import/export")
async def export_customers(
    request: Request, user: ConsoleManager, session: SessionDep, settings: SettingsDep
) -> Response:
    """The customers under the form's filters, as CSV or XLSX; a bad filter is shown beside
    its field on the page instead."""
    form, filters = _export_filters(request, settings)
    if form.errors:
        return _page(request, settings, user, UploadForm(), form, status_code=400)
    kind = _kind(request.query_params.get("format", "csv"))
    return export_download(await service.export_file(session, user, filters, kind), kind)


@router.get("/import/{pending_id}")
async def pending_page(
    request: Request,
    pending_id: str,
    user: ConsoleManager,
    database: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    """A checked upload: its confirm, then its progress and result."""
    pending = await pending_imports.current(database, user, _id(pending_id))
    return render_page(
        request, settings, user, "transfer/pending.html",
        active="transfer", pending=_view(pending), status_id=STATUS_ID,
    )  # fmt: skip


@router.get("/import/{pending_id}/status")
async def pending_status(
    request: Request, pending_id: str, user: ConsoleManager, database: DatabaseDep
) -> Response:
    """The status region alone, polled every second while the import runs."""
    pending = await pending_imports.current(database, user, _id(pending_id))
    return render(request, "transfer/status.html", pending=_view(pending), status_id=STATUS_ID)


@router.post("/import/{pending_id}/confirm")
async def confirm_import(
    request: Request,
    pending_id: str,
    user: ConsoleManager,
    database: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    """确认导入: start the import of a checked upload, once."""
    await pending_imports.confirm(database, settings, user, _id(pending_id))
    return done(request, f"/import/{pending_id}", "已开始导入")


def _page(
    request: Request,
    settings: Settings,
    user: User,
    upload: UploadForm,
    export: ExportForm,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    return render_page(
        request, settings, user, "transfer/page.html",
        active="transfer", status_code=status_code, upload=upload, export=export,
        choices=customer_choices(settings), labels=EXPORT_CHOICES, max_bytes=MAX_IMPORT_BYTES,
        too_large=TOO_LARGE, max_rows=service.MAX_IMPORT_ROWS,
    )  # fmt: skip


def _refused(
    request: Request,
    settings: Settings,
    user: User,
    message: str,
    filename: str = "",
    status_code: int = 400,
) -> HTMLResponse:
    form = UploadForm(error=message, filename=filename)
    return _page(request, settings, user, form, ExportForm(), status_code=status_code)


def _export_filters(request: Request, settings: Settings) -> tuple[ExportForm, CustomerFilters]:
    """The export form's filters, read as the customer list reads its own: a value not in
    its list, or a date that is no date, is an error beside its field."""
    params = request.query_params
    form = ExportForm(values={name: params.get(name, "").strip() for name in EXPORT_NAMES})
    check_choices(form.values, customer_choices(settings), form.errors)
    start, end = read_dates(form.values, "createdFrom", "createdTo", form.errors)
    filters = CustomerFilters(
        lead_source=form.values["leadSource"] or None,
        service_category=form.values["serviceCategory"] or None,
        contract_status=form.values["contractStatus"] or None,
        lead_level=form.values["leadLevel"] or None,
        created_from=start,
        created_to=end,
    )
    return form, filters


@dataclass(frozen=True)
class PendingView:
    """A pending import as its page shows it."""

    id: str
    filename: str
    row_count: int
    status: str
    stage: str
    rows_done: int
    imported: int | None
    message: str
    problems: list[dict[str, Any]]
    created: str
    finished: str

    @property
    def running(self) -> bool:
        return self.status == ImportStatus.importing.value

    @property
    def stage_label(self) -> str:
        return "正在写入" if self.stage == ImportStage.writing.value else "正在检查"


def _view(pending: PendingImport) -> PendingView:
    return PendingView(
        id=pending.id,
        filename=pending.filename,
        row_count=pending.row_count,
        status=pending.status,
        stage=pending.stage or "",
        rows_done=min(pending.rows_done, pending.row_count),
        imported=pending.imported,
        message=pending.message or "",
        problems=pending.problems or [],
        created=beijing(pending.created_at),
        finished=beijing(pending.finished_at),
    )


def _id(pending_id: str) -> str:
    return object_id(pending_id, pending_imports.NOT_FOUND)


def _kind(text: str) -> FileFormat:
    try:
        return FileFormat(text)
    except ValueError:
        raise BadRequest("文件格式只能是 csv 或 xlsx") from None
