"""Every location of a summit as CSV, for organisers."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.storage.tables import Location, Summit

CSV_COLUMNS = (
    "id",
    "label",
    "country",
    "city",
    "kind",
    "expected_audience",
    "privacy_level",
    "status",
    "contact",
    "created_at",
    "approved_at",
    "last_online_at",
    "last_offline_at",
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    # A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def locations_csv(db: DbSession, summit: Summit) -> str:
    """Every location of the summit as CSV, for organisers (no secrets, no public ids)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    query = select(Location).where(Location.summit_id == summit.id).order_by(Location.id)
    for location in db.scalars(query):
        writer.writerow([_cell(getattr(location, column)) for column in CSV_COLUMNS])
    return out.getvalue()
