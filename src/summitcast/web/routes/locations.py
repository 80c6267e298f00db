"""Watch locations: public registration, the location screen, and the organisers' review pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import pycountry
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from summitcast.domain.accounts import Permission
from summitcast.domain.privacy import PRIVACY_LEVELS
from summitcast.errors import ValidationError
from summitcast.services import locations, programme
from summitcast.services.live import LiveService
from summitcast.storage.tables import Summit
from summitcast.web.deps import CurrentActor, DbDep, SettingsDep, summit_for
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])
backstage_router = APIRouter(
    prefix="/backstage", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)

LocationsSummit = Annotated[Summit, summit_for(Permission.MANAGE_LOCATIONS)]
ShortText = Annotated[str, Form(max_length=500)]

# Every ISO 3166 country (plus Kosovo) by name, for the registration form's list.
COUNTRIES = sorted(
    [(c.alpha_2, str(getattr(c, "common_name", None) or c.name)) for c in pycountry.countries]
    + [("XK", "Kosovo")],
    key=lambda pair: pair[1],
)


def _live(request: Request) -> LiveService:
    live: LiveService = request.app.state.live
    return live


def _client_key(request: Request) -> str:
    # Only ever handed to the RateLimiter, which keeps an HMAC of it, never the address.
    return request.client.host if request.client else "unknown"


def _form_context(summit: Summit, values: dict[str, str], error: str = "") -> dict[str, object]:
    return {
        "summit": summit,
        "countries": COUNTRIES,
        "kinds": locations.KINDS,
        "levels": PRIVACY_LEVELS,
        "values": values,
        "error": error,
    }


@router.get("/s/{slug}/register", response_class=HTMLResponse)
def register_page(request: Request, slug: str, db: DbDep) -> Response:
    """The public form for registering a watch location."""
    summit = programme.get_summit(db, slug)
    return render(request, "locations/register.html", _form_context(summit, {}))


@router.post("/s/{slug}/register", response_class=HTMLResponse)
def register(
    request: Request,
    slug: str,
    db: DbDep,
    settings: SettingsDep,
    label: ShortText = "",
    country: ShortText = "",
    city: ShortText = "",
    kind: ShortText = "other",
    expected_audience: ShortText = "1",
    contact: ShortText = "",
    privacy_level: ShortText = "",
    website: ShortText = "",
) -> Response:
    """Register a location; the host gets its secret link (counting starts once approved)."""
    request.app.state.registration_limiter.hit(_client_key(request))
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
        audience = int(expected_audience.strip() or "1")
    except ValueError:
        audience = 0
    try:
        location = locations.register_location(
            db,
            summit,
            locations.LocationInput(
                label=label,
                country=country,
                city=city,
                kind=kind,
                expected_audience=audience,
                contact=contact,
                privacy_level=privacy_level,
            ),
            at_risk=settings.at_risk_countries,
        )
    except ValidationError as error:
        return render(
            request,
            "locations/register.html",
            _form_context(summit, values, error.message),
            status_code=422,
        )
    # Rendered here, never redirected to: the secret must not appear in any URL the
    # server sees. The link carries it in the fragment, which browsers never send.
    return render(
        request,
        "locations/registered.html",
        {"summit": summit, "location": location, "city_typed": city.strip()},
        status_code=201,
    )


@router.get("/l/{public_id}", response_class=HTMLResponse)
def location_screen(request: Request, public_id: str, db: DbDep, settings: SettingsDep) -> Response:
    """The full-screen page a host opens in the hall: programme, player, presence."""
    location = locations.find_location(db, public_id)
    summit = location.summit
    return render(
        request,
        "locations/screen.html",
        {
            "summit": summit,
            "location": location,
            "on_air": locations.on_air(summit, datetime.now(UTC)),
            "interval_s": settings.heartbeat_interval_s,
        },
    )


@router.get("/l/{public_id}/now.json")
def location_now(public_id: str, db: DbDep) -> Response:
    """What is on now and next, for the location screen to refresh without reloading."""
    location = locations.find_location(db, public_id)
    summit = location.summit
    return JSONResponse(locations.on_air_json(summit, datetime.now(UTC)))


# --- organisers ------------------------------------------------------------------------


def _back(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


@backstage_router.get("/s/{slug}/locations", response_class=HTMLResponse)
def review_page(
    request: Request,
    db: DbDep,
    summit: LocationsSummit,
    status: str = "",
    country: str = "",
) -> Response:
    """Registered locations with filters, for approval and revocation."""
    return render(
        request,
        "backstage/locations.html",
        {
            "summit": summit,
            "locations": locations.list_locations(db, summit, status=status, country=country),
            "counts": locations.status_counts(db, summit),
            "auto_approve": locations.auto_approves(db, summit),
            "status": status,
            "country": country.strip().upper(),
            "statuses": locations.STATUSES,
            "kinds": locations.KINDS,
        },
    )


@backstage_router.post("/s/{slug}/locations/approve")
async def approve(
    request: Request,
    db: DbDep,
    summit: LocationsSummit,
    actor: CurrentActor,
    ids: Annotated[list[int] | None, Form()] = None,
) -> Response:
    """Approve one or several locations (checked boxes of the review list)."""
    approved = locations.approve_selected(db, summit, ids or [], actor)
    db.commit()  # before other workers are told to re-read these locations
    for public_id in approved:
        await _live(request).location_changed(summit.id, public_id, offline=False)
    return _back(f"/backstage/s/{summit.slug}/locations?status=pending")


@backstage_router.post("/s/{slug}/locations/revoke")
async def revoke(
    request: Request,
    db: DbDep,
    summit: LocationsSummit,
    actor: CurrentActor,
    id: Annotated[int, Form()],
) -> Response:
    """Revoke a location: it is taken offline now and its heartbeats are refused."""
    location = locations.revoke_location(db, locations.get_location(db, summit, id), actor)
    db.commit()
    await _live(request).location_changed(summit.id, location.public_id, offline=True)
    return _back(f"/backstage/s/{summit.slug}/locations")


@backstage_router.post("/s/{slug}/locations/reissue", response_class=HTMLResponse)
async def reissue(
    request: Request,
    db: DbDep,
    summit: LocationsSummit,
    actor: CurrentActor,
    id: Annotated[int, Form()],
) -> Response:
    """Give a location a new secret link; the old link stops counting at once."""
    location = locations.reissue_link(db, locations.get_location(db, summit, id), actor)
    db.commit()  # before other workers are told to re-read the location
    # Offline now: whoever holds the old link must not keep it counted until the timeout.
    await _live(request).location_changed(summit.id, location.public_id, offline=True)
    # Rendered, never redirected to: the new secret must not appear in any URL the
    # server sees; no-store keeps it out of the browser's cache too.
    response = render(
        request, "backstage/location_link.html", {"summit": summit, "location": location}
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
    request: Request, db: DbDep, summit: LocationsSummit, country: str = ""
) -> Response:
    """Live figures for organisers: online now, peak, per country, arrivals and drops."""
    figures = await _live(request).organiser_figures(summit.id)
    code = country.strip().upper()
    return render(
        request,
        "backstage/dashboard.html",
        {
            "summit": summit,
            "figures": figures,
            "approved": locations.approved_by_country(db, summit),
            "arrivals": locations.newest_arrivals(db, summit, country=code),
            "drops": locations.recent_drops(db, summit, country=code),
            "country": code,
            "counts": locations.status_counts(db, summit),
        },
    )
