"""Jinja2 environment shared by every page, with the filters pages need."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pycountry
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from summitcast.domain.programme import format_duration
from summitcast.web.routes.icons import icon_version
from summitcast.web.security import csrf_token

TEMPLATES = Path(__file__).parent / "templates"
# Country flags as SVG files (npm flag-icons, copied by frontend/build.mjs).
FLAGS = Path(__file__).parent / "static" / "build" / "flags"
FLAGS_URL = "/static/build/flags"


def _local(moment: datetime, zone: str, fmt: str = "%H:%M") -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime(fmt)


def _country(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code) if code else None
    return str(getattr(country, "name", code)) if country else code


def flag_codes(folder: Path = FLAGS) -> frozenset[str]:
    """The ISO 3166 alpha-2 codes that have a flag image in the built assets."""
    if not folder.is_dir():
        return frozenset()
    known = {country.alpha_2 for country in pycountry.countries}
    return frozenset(p.stem.upper() for p in folder.glob("??.svg")) & known


def make_flag_filter(codes: frozenset[str]) -> Callable[..., Markup]:
    """The |flag filter: a country's flag as an image, or its code as a badge without one."""

    # Not the regional-indicator emoji it once was: without an emoji font (most Linux
    # desktops, Windows) those pairs render as two boxes or two letters.
    def flag(code: str, decorative: bool = False) -> Markup:
        code = (code or "").upper()
        if len(code) != 2 or not code.isalpha():
            return Markup("")
        # Beside the country's name (decorative=True) the flag says nothing more, and
        # screen readers would read the name twice; alone, it is the name.
        name = _country(code)
        if code in codes:
            label = Markup('alt=""') if decorative else Markup('alt="{0}" title="{0}"')
            return Markup(
                '<img class="sc-flag" src="{0}/{1}.svg" {2} width="20" height="15"'
                ' loading="lazy" decoding="async">'
            ).format(FLAGS_URL, code.lower(), label.format(name))
        if decorative:
            return Markup(
                '<span class="sc-flag sc-flag-code" aria-hidden="true">{0}</span>'
            ).format(code)
        return Markup(
            '<span class="sc-flag sc-flag-code" role="img" aria-label="{0}">{1}</span>'
        ).format(name, code)

    return flag


def make_templates() -> Jinja2Templates:
    """Templates with summitcast's filters; autoescape is on for HTML."""
    templates = Jinja2Templates(directory=str(TEMPLATES))
    env = templates.env
    env.filters["local"] = _local
    env.filters["duration"] = format_duration
    env.filters["country"] = _country
    env.filters["flag"] = make_flag_filter(flag_codes())
    env.globals["csrf_token"] = csrf_token
    env.globals["favicon_svg"] = f"/favicon.svg?v={icon_version('favicon.svg')}"
    return templates


def render(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """Render a page with the request and the logged-in state in its context."""
    templates: Jinja2Templates = request.app.state.templates
    context = {"logged_in": isinstance(request.session.get("user_id"), int), **context}
    return templates.TemplateResponse(request, name, context, status_code=status_code)
