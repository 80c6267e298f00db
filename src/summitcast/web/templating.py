"""Jinja2 environment shared by every page, with the filters pages need."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pycountry
from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse

from summitcast.domain.programme import format_duration
from summitcast.web.security import csrf_token

TEMPLATES = Path(__file__).parent / "templates"


def _local(moment: datetime, zone: str, fmt: str = "%H:%M") -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime(fmt)


def _country(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code) if code else None
    return str(getattr(country, "name", code)) if country else code


def _flag(code: str) -> str:
    # Regional indicator symbols: the flag emoji needs no image and no network.
    if len(code) != 2 or not code.isalpha():
        return ""
    return "".join(chr(0x1F1E6 + ord(c) - ord("A")) for c in code.upper())


def make_templates() -> Jinja2Templates:
    """Templates with summitcast's filters; autoescape is on for HTML."""
    templates = Jinja2Templates(directory=str(TEMPLATES))
    env = templates.env
    env.filters["local"] = _local
    env.filters["duration"] = format_duration
    env.filters["country"] = _country
    env.filters["flag"] = _flag
    env.globals["csrf_token"] = csrf_token
    return templates


def render(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """Render a page with the request and the logged-in state in its context."""
    templates: Jinja2Templates = request.app.state.templates
    context = {"logged_in": isinstance(request.session.get("user_id"), int), **context}
    return templates.TemplateResponse(request, name, context, status_code=status_code)
