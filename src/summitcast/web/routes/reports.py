"""Attendance: the organisers' report, publishing, the public figures and a host's own check."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from summitcast.domain.accounts import Permission
from summitcast.errors import NotFoundError
from summitcast.services import Summit, attendance, attendance_pages
from summitcast.services.reports import DOWNLOADS, EXACT_CSV
from summitcast.web.deps import (
    AttendanceFlushDep,
    DbDep,
    ReportCacheDep,
    SettingsDep,
    summit_for,
)
from summitcast.web.edge import Slug
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])
backstage_router = APIRouter(
    prefix="/backstage", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)

# Viewing and publishing are both organiser acts: only organisers hold VIEW_REPORTS.
ReportSummit = Annotated[Summit, summit_for(Permission.VIEW_REPORTS)]
Secret = Annotated[str, Form(max_length=200)]
# Host pages carry the location's secret: never cache them anywhere.
NO_STORE = {"Cache-Control": "no-store"}


def _no_store(response: Response) -> Response:
    response.headers.update(NO_STORE)
    return response


def _every(seconds: float) -> str:
    """Return a head interval in words: '5 minutes', '30 seconds'."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return "minute" if minutes == 1 else f"{minutes} minutes"
    return f"{seconds:g} seconds"


def _when(epoch: int | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- organisers --------------------------------------------------------------------------


@backstage_router.get("/s/{slug}/report", response_class=HTMLResponse)
async def report_page(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    summit: ReportSummit,
    cache: ReportCacheDep,
) -> Response:
    """The attendance report: figures, charts, map, tables, downloads and publishing."""
    report = await asyncio.to_thread(attendance_pages.organiser_report, db, settings, cache, summit)
    built = report.built
    public_rows = {row.country: row.locations for row in built.data.public.countries}
    return render(
        request,
        "backstage/report.html",
        {
            "summit": summit,
            "report": built.files.html,
            "figures": built.data.public,
            "exact": built.data.exact,
            "public_rows": public_rows,
            # Countries that exist in the exact table but not on their own in public.
            "merged": sum(
                1 for code in built.data.exact if code not in public_rows and code != "ZZ"
            ),
            "titles": built.data.titles,
            "k": settings.k_anonymity,
            "publication": report.publication,
            "live": report.live,
            "head_every": _every(settings.attendance_head_interval_s),
            "when": _when,
            "exact_csv": EXACT_CSV,
        },
    )


@backstage_router.get("/s/{slug}/report/download")
async def report_file(summit: ReportSummit, cache: ReportCacheDep, file: str = "") -> Response:
    """One file of the built report (PDF, CSV, PNG), by its fixed name."""
    name = file
    media_type = DOWNLOADS.get(name)
    if media_type is None:
        raise NotFoundError("No such report file.")
    built = await asyncio.to_thread(cache.get, summit)
    path = built.files.out_dir / name
    if not path.is_file():
        raise NotFoundError("No such report file.")
    inline = name.endswith(".png")
    return FileResponse(
        path,
        media_type=media_type,
        filename=None if inline else f"{summit.slug}-{name}",
        headers={"Cache-Control": "private, no-store"},
    )


@backstage_router.post("/s/{slug}/attendance/publish")
async def publish(
    db: DbDep,
    settings: SettingsDep,
    summit: ReportSummit,
    flush: AttendanceFlushDep,
    cache: ReportCacheDep,
) -> Response:
    """Publish the signed attendance log and its figures (replacing the public ones)."""
    await attendance_pages.publish(db, settings, summit, flush=flush, cache=cache)
    return RedirectResponse(f"/backstage/s/{summit.slug}/report#publication", status_code=303)


@backstage_router.post("/s/{slug}/attendance/live")
async def publish_live(
    db: DbDep, settings: SettingsDep, summit: ReportSummit, flush: AttendanceFlushDep
) -> Response:
    """Start publishing the attendance log live: a signed head every head interval."""
    await attendance_pages.start_live(db, settings, summit, flush=flush)
    return RedirectResponse(f"/backstage/s/{summit.slug}/report#publication", status_code=303)


# --- public ------------------------------------------------------------------------------


@router.get("/s/{slug}/attendance/heads.json")
def public_heads(db: DbDep, settings: SettingsDep, slug: Slug) -> Response:
    """Every signed head of the live log, each with its consistency proof from the one before."""
    body = attendance_pages.live_heads_document(db, settings, slug)
    return Response(json.dumps(body, indent=1), media_type="application/json")


@router.get("/s/{slug}/attendance/live-log.jsonl")
def public_live_log(db: DbDep, settings: SettingsDep, slug: Slug) -> Response:
    """The live log up to its newest head (lines appended after it are not served yet)."""
    summit, path = attendance_pages.live_log_of(db, settings, slug)
    length = attendance.live_log_length(path)

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as handle:
            left = length
            while left > 0:
                chunk = handle.read(min(left, 1 << 20))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    return StreamingResponse(
        chunks(),
        media_type="application/jsonl",
        headers={
            "Content-Length": str(length),
            "Content-Disposition": (
                f'attachment; filename="{summit.slug}-attendance-live-log.jsonl"'
            ),
        },
    )


@router.get("/s/{slug}/attendance", response_class=HTMLResponse)
def public_page(request: Request, db: DbDep, settings: SettingsDep, slug: Slug) -> Response:
    """Published attendance figures (k-suppressed), the log, the key and how to verify."""
    shown = attendance_pages.public_attendance(db, settings, slug)
    publication, heads = shown.publication, shown.heads
    return render(
        request,
        "attendance.html",
        {
            "summit": shown.summit,
            "publication": publication,
            # Newest first; the whole chain is in heads.json.
            "heads": list(reversed(heads[-24:])),
            "head_count": len(heads),
            "head_every": _every(settings.attendance_head_interval_s),
            "figures": publication.figures if publication else None,
            "titles": shown.titles,
            "when": _when,
            "base_url": str(request.base_url).rstrip("/"),
        },
    )


@router.get("/s/{slug}/attendance/log.jsonl")
def public_log(db: DbDep, settings: SettingsDep, slug: Slug) -> Response:
    """The published attendance log (JSON Lines)."""
    summit, path = attendance_pages.published_log(db, settings, slug)
    return FileResponse(
        path,
        media_type="application/jsonl",
        filename=f"{summit.slug}-attendance-log.jsonl",
    )


@router.get("/s/{slug}/attendance/public-key.txt")
def public_key(db: DbDep, slug: Slug) -> Response:
    """The summit's Ed25519 public key (base64), as `audit verify --public-key` takes it."""
    _, publication = attendance_pages.publication_of(db, slug)
    return Response(publication.public_key + "\n", media_type="text/plain; charset=utf-8")


@router.get("/s/{slug}/attendance/{name}.csv")
def public_csv_file(db: DbDep, slug: Slug, name: str) -> Response:
    """Published figures as CSV: countries (k-suppressed), sessions or the bucket timeline."""
    summit, body = attendance_pages.published_csv(db, slug, name)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{summit.slug}-{name}.csv"'},
    )


@router.get("/s/{slug}/attendance/map.png")
async def public_map_png(db: DbDep, settings: SettingsDep, slug: Slug) -> Response:
    """The world map of the published (k-suppressed) per-country figures."""
    path = await asyncio.to_thread(attendance_pages.published_map, db, settings, slug)
    return FileResponse(path, media_type="image/png")


# --- hosts -------------------------------------------------------------------------------


@router.get("/l/{public_id}/counted", response_class=HTMLResponse)
def counted_form(request: Request, db: DbDep, public_id: str) -> Response:
    """Ask for the location's secret (filled in from the link's #k=…) before showing anything."""
    location = attendance.find_for_host(db, public_id)
    return _no_store(
        render(
            request,
            "locations/counted.html",
            {"summit": location.summit, "public_id": public_id, "result": None},
        )
    )


@router.post("/l/{public_id}/counted", response_class=HTMLResponse)
def counted(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    public_id: str,
    secret: Secret = "",
) -> Response:
    """Whether and in which published buckets this location was counted, with a proof."""
    location, result = attendance_pages.host_check(db, settings, public_id, secret.strip())
    return _no_store(
        render(
            request,
            "locations/counted.html",
            {
                "summit": location.summit,
                "public_id": public_id,
                "result": result,
                "secret": secret.strip(),
                "when": _when,
                "proof_json": json.dumps(result.proof, indent=2) if result.proof else "",
            },
        )
    )


@router.post("/l/{public_id}/counted/proof")
def counted_proof(
    db: DbDep,
    settings: SettingsDep,
    public_id: str,
    secret: Secret = "",
    bucket: Annotated[int | None, Form()] = None,
) -> Response:
    """The inclusion proof of one bucket as a file for `summitcast audit check-proof`."""
    _, result = attendance_pages.host_check(
        db, settings, public_id, secret.strip(), bucket_start=bucket
    )
    if result.proof is None:
        raise NotFoundError(result.message)
    return Response(
        json.dumps(result.proof, indent=2) + "\n",
        media_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="inclusion-proof.json"',
            **NO_STORE,
        },
    )


@router.post("/l/{public_id}/forget", response_class=HTMLResponse)
def forget(
    request: Request, db: DbDep, settings: SettingsDep, public_id: str, secret: Secret = ""
) -> Response:
    """Delete the location's label and contact; what was counted and published stays."""
    location = attendance_pages.forget_host(db, settings, public_id, secret)
    return _no_store(
        render(
            request,
            "locations/forgotten.html",
            {"summit": location.summit, "public_id": public_id},
        )
    )
