"""首页: the dashboard."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from wxcrm.console.routing import console_router, render_page
from wxcrm.console.session import ConsoleUser
from wxcrm.core.deps import SettingsDep

router = console_router()


@router.get("/")
async def home(request: Request, user: ConsoleUser, settings: SettingsDep) -> HTMLResponse:
    """首页, inside the frame."""
    return render_page(request, settings, user, "home.html", active="home")
