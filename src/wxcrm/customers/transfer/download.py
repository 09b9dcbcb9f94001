"""A customers file as an HTTP download: the same answer from the API and the console."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import Response

from wxcrm.core import clock
from wxcrm.customers.transfer.service import MEDIA_TYPES, FileFormat


def download(content: bytes, kind: FileFormat, name: str, ascii_name: str) -> Response:
    """`content` as an attachment named `name` (Chinese) or, for clients that cannot read
    that, `ascii_name`; never cached, since it holds customers' data."""
    # filename* carries the Chinese name (RFC 6266); filename is for clients without it.
    disposition = (
        f'attachment; filename="{ascii_name}.{kind.value}"; '
        f"filename*=UTF-8''{quote(f'{name}.{kind.value}')}"
    )
    return Response(
        content,
        media_type=MEDIA_TYPES[kind],
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )


def export_download(content: bytes, kind: FileFormat) -> Response:
    """An export of customers, named for today."""
    today = clock.today().strftime("%Y%m%d")
    return download(content, kind, f"客户列表-{today}", f"customers-{today}")


def template_download(content: bytes, kind: FileFormat) -> Response:
    """The import template."""
    return download(content, kind, "客户导入模板", "customer-import-template")
