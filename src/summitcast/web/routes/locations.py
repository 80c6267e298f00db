"""Watch locations: public registration, the location screen, and the organisers' review pages."""

from __future__ import annotations

import hashlib
import time
from typing import Annotated
from urllib.parse import parse_qs

import pycountry
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from summitcast.domain import paging
from summitcast.domain.accounts import Permission
from summitcast.domain.privacy import PRIVACY_LEVELS
from summitcast.errors import ValidationError
from summitcast.services import Summit, locations, programme
from summitcast.services.locations import review
from summitcast.web import forms, lists
from summitcast.web.deps import (
    BroadcastsDep,
    CurrentActor,
    DbDep,
    LiveDep,
    RegistrationLimiterDep,
    SettingsDep,
    summit_for,
)
from summitcast.web.edge import Slug
from summitcast.web.on_air import screen_view
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])
backstage_router = APIRouter(
    prefix="/backstage", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)

LocationsSummit = Annotated[Summit, summit_for(Permission.MANAGE_LOCATIONS)]
# Generous caps: the service says "Name of the place may have at most 200 characters",
# which a person can act on; these only keep a robot's megabytes out.
RegisterText = Annotated[str, Form(max_length=5000)]
BackField = Annotated[str, Form(max_length=2000)]
# Row ids fit in 63 bits; a bigger number is a typo or a probe, refused before the database.
MAX_ID = 2**62
LocationId = Annotated[int, Form(ge=1, le=MAX_ID)]
# The session keys of this module: the registrant's one-time link ticket, the review notice.
LINK_TICKET = "location_link_ticket"
LINK_TICKET_S = 600.0
NOTICE = "locations_notice"

# Every ISO 3166 country (plus Kosovo) by name, for the registration form's list.
COUNTRIES = sorted(
    [(c.alpha_2, str(getattr(c, "common_name", None) or c.name)) for c in pycountry.countries]
    + [("XK", "Kosovo")],
    key=lambda pair: pair[1],
)


def _client_key(request: Request) -> str:
    # Only ever handed to the RateLimiter, which keeps an HMAC of it, never the address.
    # Behind a trusted proxy it is the address the proxy forwarded (web/proxies.py).
    return request.client.host if request.client else "unknown"


def _form_context(
    summit: Summit, values: dict[str, str], error: str = "", field: str | None = None
) -> dict[str, object]:
    return {
        "summit": summit,
        "countries": COUNTRIES,
        "kinds": locations.KINDS,
        "levels": PRIVACY_LEVELS,
        "values": values,
        "error": error,
        "error_field": field or "",
    }


@router.get("/s/{slug}/register", response_class=HTMLResponse)
def register_page(request: Request, slug: Slug, db: DbDep) -> Response:
    """The public form for registering a watch location."""
    summit = programme.get_summit(db, slug)
    return render(request, "locations/register.html", _form_context(summit, {}))


@router.post("/s/{slug}/register", response_class=HTMLResponse)
def register(
    request: Request,
    slug: Slug,
    db: DbDep,
    settings: SettingsDep,
    live: LiveDep,
    limiter: RegistrationLimiterDep,
    label: RegisterText = "",
    country: RegisterText = "",
    city: RegisterText = "",
    kind: RegisterText = "other",
    expected_audience: RegisterText = "1",
    contact: RegisterText = "",
    privacy_level: RegisterText = "",
    website: RegisterText = "",
) -> Response:
    """Register a location, then send the browser to the page that shows its link once."""
    limiter.hit(_client_key(request))
    summit = programme.get_summit(db, slug)
    values = {
        "label": label,
        "country": country,
        "city": city,
        "kind": kind,
        "expected_audience": expected_audience,
        "contact": contact,
        "privacy_level": privacy_level,
    }
    if website:
        # The honeypot field is hidden from people; only a form-filling robot fills it.
        raise ValidationError("This registration was refused.", field="website")
    try:
        location = locations.register_location(
            db,
            summit,
            forms.location_input(values),
            at_risk=settings.at_risk_countries,
            links=live.links,
        )
    except ValidationError as error:
        return render(
            request,
            "locations/register.html",
            _form_context(summit, values, error.message, error.field),
            status_code=422,
        )
    # Redirect after POST (DbDep commits before the answer, so the next page finds the
    # row), so a refresh cannot register the place twice. The secret never goes into
    # the URL: the session (a signed cookie) keeps only a one-time ticket naming the
    # location and a digest of its sealed secret; the next page opens the secret from
    # the database, shows it once and deletes the ticket.
    request.session[LINK_TICKET] = {
        "location": location.public_id,
        "digest": _digest(location.sealed_secret),
        "until": time.time() + LINK_TICKET_S,
        "city_typed": city.strip()[:200],
    }
    return RedirectResponse(f"/s/{summit.slug}/registered/{location.public_id}", status_code=303)


def _digest(sealed: str) -> str:
    # Ties the ticket to this secret (each sealing is random, so a re-issued link has
    # another digest): a link re-issued meanwhile is not shown to the registrant.
    return hashlib.sha256(sealed.encode()).hexdigest()[:32]


@router.get("/s/{slug}/registered/{public_id}", response_class=HTMLResponse)
def registered(request: Request, slug: Slug, public_id: str, db: DbDep, live: LiveDep) -> Response:
    """A registered location's status, and its secret link the first time only."""
    location = locations.registered_location(db, slug, public_id)
    summit = location.summit
    ticket = request.session.get(LINK_TICKET)
    show_link = (
        isinstance(ticket, dict)
        and ticket.get("location") == public_id
        and ticket.get("digest") == _digest(location.sealed_secret)
        and float(ticket.get("until", 0)) > time.time()
    )
    city_typed = ""
    if isinstance(ticket, dict) and ticket.get("location") == public_id:
        city_typed = str(ticket.get("city_typed", ""))
        del request.session[LINK_TICKET]  # once: a refresh shows the status without the link
    response = render(
        request,
        "locations/registered.html",
        {
            "summit": summit,
            "location": location,
            "show_link": show_link,
            "city_typed": city_typed,
            "link_secret": live.links.open(location) if show_link else "",
        },
    )
    # The secret must stay out of every cache, the browser's back-forward one included.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get("/l/{public_id}", response_class=HTMLResponse)
def location_screen(
    request: Request, public_id: str, db: DbDep, settings: SettingsDep, broadcasts: BroadcastsDep
) -> Response:
    """The full-screen player a host opens in the hall: broadcast, now and next, presence."""
    location = locations.find_location(db, public_id)
    summit = location.summit
    return render(
        request,
        "locations/screen.html",
        {
            "summit": summit,
            "location": location,
            # The broadcast's own state (not the planned times); later changes are
            # pushed over the screen's presence socket (web/on_air.py).
            "view": screen_view(db, summit, broadcasts.health),
            "interval_s": settings.heartbeat_interval_s,
        },
    )


@router.get("/l/{public_id}/now.json")
def location_now(public_id: str, db: DbDep, broadcasts: BroadcastsDep) -> Response:
    """What the screen plays and shows now, for a screen whose presence socket is blocked."""
    location = locations.find_location(db, public_id)
    # Only screens on the HTTP fallback ask, every 30 s; a CDN may keep it a few seconds.
    return JSONResponse(
        screen_view(db, location.summit, broadcasts.health),
        headers={"Cache-Control": "public, max-age=5"},
    )


# --- organisers ------------------------------------------------------------------------

LIST_KEYS = ("status", "country", "q", "sort", "per", "page")


def _back(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _list_url(summit: Summit, back: str) -> str:
    """The review list at the query string a form came from, re-checked (never an open redirect)."""
    url = f"/backstage/s/{summit.slug}/locations"
    given = {k: v[-1] for k, v in parse_qs(back[:2000]).items() if k in LIST_KEYS}
    try:
        chosen, view = _review_query(**given)
    except ValidationError:
        return url
    query = lists.with_page(_filter_query(chosen, view), view.page)
    return f"{url}?{query}" if query else url


def _review_query(
    status: str = "", country: str = "", q: str = "", sort: str = "", per: str = "", page: str = ""
) -> tuple[locations.LocationFilter, lists.ListView]:
    chosen = locations.location_filter(status=status, country=country, text=q)
    return chosen, lists.list_view(page, per, sort, locations.LOCATION_SORTS)


def _filter_query(chosen: locations.LocationFilter, view: lists.ListView) -> str:
    return view.query(status=chosen.status, country=chosen.country, q=chosen.text)


def _notice(request: Request, text: str) -> None:
    request.session[NOTICE] = text


@backstage_router.get("/s/{slug}/locations", response_class=HTMLResponse)
def review_page(
    request: Request,
    db: DbDep,
    summit: LocationsSummit,
    status: lists.ListCode = "",
    country: lists.ListCode = "",
    q: lists.ListText = "",
    sort: lists.ListCode = "",
    per: lists.ListCode = "",
    page: lists.ListCode = "",
) -> Response:
    """Registered locations a page at a time, filtered and sorted, for approval and revocation."""
    chosen, view = _review_query(status, country, q, sort, per, page)
    query = _filter_query(chosen, view)
    if (tidy := lists.tidy_redirect(request, query, view.page)) is not None:
        return tidy
    shown = locations.review_listing(
        db, summit, chosen, sort=view.sort, page=view.page, size=view.size
    )
    listed = shown.listed
    return render(
        request,
        "backstage/locations.html",
        {
            "summit": summit,
            "listed": listed,
            "pager": listed.page,
            "query": query,
            "back": lists.with_page(query, listed.page.number),
            "auto_approve": shown.auto_approve,
            "filter": chosen,
            "view": view,
            "statuses": locations.STATUSES,
            "sorts": locations.LOCATION_SORTS,
            "sizes": paging.PAGE_SIZES,
            "kinds": locations.KINDS,
            "notice": request.session.pop(NOTICE, ""),
        },
    )


def _approved_text(count: int) -> str:
    if count == 0:
        return "No location was approved: none of them was pending any more."
    return f"Approved {count:,} location{'s' if count != 1 else ''}."


@backstage_router.post("/s/{slug}/locations/approve")
async def approve(
    request: Request,
    db: DbDep,
    summit: LocationsSummit,
    actor: CurrentActor,
    live: LiveDep,
    ids: Annotated[list[int] | None, Form()] = None,
    back: BackField = "",
) -> Response:
    """Approve the pending locations ticked on the page (or the one whose button was pressed)."""
    if not ids:
        _notice(request, "No location was selected: tick the ones to approve first.")
        return _back(_list_url(summit, back))
    # An id past any row's is no location of this summit, like an id of another summit.
    wanted = [i for i in ids if 0 < i <= MAX_ID]
    approved = await review.approve_ticked(db, summit, wanted, actor, live)
    _notice(request, _approved_text(len(approved)))
    return _back(_list_url(summit, back))


@backstage_router.post("/s/{slug}/locations/approve-all")
async def approve_all(
    request: Request,
    db: DbDep,
    summit: LocationsSummit,
    actor: CurrentActor,
    live: LiveDep,
    up_to: Annotated[int, Form(ge=0, le=MAX_ID)],
    status: Annotated[str, Form(max_length=40)] = "",
    country: Annotated[str, Form(max_length=40)] = "",
    q: Annotated[str, Form(max_length=paging.MAX_QUERY_TEXT)] = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
    back: BackField = "",
) -> Response:
    """Approve every pending location the list's filter matches, as the organiser confirmed."""
    if confirm != "yes":
        raise ValidationError(
            "Tick the box that confirms approving all matching locations, then press again.",
            field="confirm",
        )
    chosen = locations.location_filter(status=status, country=country, text=q)
    approved = await review.approve_all(db, summit, chosen, actor, live, up_to_id=up_to)
    _notice(request, _approved_text(len(approved)))
    return _back(_list_url(summit, back))


@backstage_router.post("/s/{slug}/locations/reapprove")
async def reapprove(
    request: Request,
    db: DbDep,
    summit: LocationsSummit,
    actor: CurrentActor,
    live: LiveDep,
    id: LocationId,
    back: BackField = "",
) -> Response:
    """Approve one revoked location again (bulk approval leaves revoked ones alone)."""
    location = await review.approve_again(db, summit, id, actor, live)
    _notice(request, f"{location.label} is approved again.")
    return _back(_list_url(summit, back))


@backstage_router.post("/s/{slug}/locations/revoke")
async def revoke(
    request: Request,
    db: DbDep,
    summit: LocationsSummit,
    actor: CurrentActor,
    live: LiveDep,
    id: LocationId,
    back: BackField = "",
) -> Response:
    """Revoke a location: it is taken offline now and its heartbeats are refused."""
    location = await review.revoke(db, summit, id, actor, live)
    _notice(request, f"{location.label} is revoked: its screen no longer counts.")
    return _back(_list_url(summit, back))


@backstage_router.post("/s/{slug}/locations/reissue", response_class=HTMLResponse)
async def reissue(
    request: Request,
    db: DbDep,
    summit: LocationsSummit,
    actor: CurrentActor,
    live: LiveDep,
    id: LocationId,
) -> Response:
    """Give a location a new secret link; the old link stops counting at once."""
    location, secret = await review.reissue(db, summit, id, actor, live)
    # Rendered, never redirected to: the new secret must not appear in any URL the
    # server sees; no-store keeps it out of the browser's cache too.
    response = render(
        request,
        "backstage/location_link.html",
        {"summit": summit, "location": location, "link_secret": secret},
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@backstage_router.post("/s/{slug}/locations/settings")
def location_settings(
    db: DbDep,
    summit: LocationsSummit,
    actor: CurrentActor,
    auto_approve: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Turn auto-approval of new registrations on or off."""
    locations.set_auto_approve(db, summit, auto_approve == "on", actor)
    return _back(f"/backstage/s/{summit.slug}/locations")


@backstage_router.get("/s/{slug}/locations.csv")
def export_csv(db: DbDep, summit: LocationsSummit) -> Response:
    """Every location of the summit as CSV."""
    return Response(
        locations.locations_csv(db, summit),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{summit.slug}-locations.csv"'},
    )


@backstage_router.get("/s/{slug}/dashboard", response_class=HTMLResponse)
async def dashboard(
    request: Request, db: DbDep, summit: LocationsSummit, live: LiveDep, country: str = ""
) -> Response:
    """Live figures for organisers: online now, peak, per country, arrivals and drops."""
    code = country.strip().upper()
    shown = await review.dashboard(db, summit, live, country=code)
    return render(
        request,
        "backstage/dashboard.html",
        {
            "summit": summit,
            "figures": shown.figures,
            "approved": shown.approved,
            "arrivals": shown.arrivals,
            "drops": shown.drops,
            "country": code,
            "counts": shown.counts,
        },
    )
