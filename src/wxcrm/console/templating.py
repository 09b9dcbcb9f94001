"""Rendering console pages: one Jinja2 environment (autoescape on), versioned static URLs."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader

HERE = Path(__file__).parent
STATIC = HERE / "static"
# Only what a page links to is served; nothing else of the package leaves it.
STATIC_FILES = (
    "console.css",
    "console.js",
    "htmx-2.0.4.min.js",
    "htmx-2.0.4.LICENSE",
    "echarts-6.1.0.min.js",
    "echarts-6.1.0.LICENSE",
    "dashboard.js",
    "transfer.js",
)
# Pages hold customers' data and run only our own scripts: no caching, no inline script,
# no framing.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none';"
        " form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "same-origin",
}

environment = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=True, auto_reload=False
)


@cache
def static_version() -> str:
    """A digest of the static files: it changes the URLs whenever one of them changes, so
    browsers may cache each URL for good."""
    digest = hashlib.sha256()
    for name in STATIC_FILES:
        digest.update((STATIC / name).read_bytes())
    return digest.hexdigest()[:12]


def static_url(name: str) -> str:
    return f"/console/static/{static_version()}/{name}"


environment.globals["static_url"] = static_url


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = environment.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
