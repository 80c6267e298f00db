"""Roles and what each may do; checked on every object in every route."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from summitcast.errors import ValidationError


class Role(StrEnum):
    """A person's role in one summit."""

    ORGANISER = "organiser"
    PRODUCER = "producer"
    SPEAKER = "speaker"
    LOCATION_HOST = "location_host"


class Permission(StrEnum):
    """One thing a role allows on a summit."""

    VIEW_BACKSTAGE = "view_backstage"
    EDIT_PROGRAMME = "edit_programme"
    RUN_BROADCAST = "run_broadcast"
    MANAGE_LOCATIONS = "manage_locations"
    VIEW_REPORTS = "view_reports"
    MANAGE_MEMBERS = "manage_members"
    # Organisers only: the trail names locations and who acted on them.
    VIEW_AUDIT_TRAIL = "view_audit_trail"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ORGANISER: frozenset(Permission),
    Role.PRODUCER: frozenset({Permission.VIEW_BACKSTAGE, Permission.RUN_BROADCAST}),
    Role.SPEAKER: frozenset(),
    Role.LOCATION_HOST: frozenset(),
}


def allows(roles: Iterable[Role], permission: Permission, *, is_admin: bool = False) -> bool:
    """True when any of the roles (or platform admin) grants the permission."""
    return is_admin or any(permission in GRANTS[role] for role in roles)


def validate_password(password: str) -> str:
    """Refuse passwords too short to resist guessing; length beats composition rules."""
    if len(password) < 12:
        raise ValidationError("A password needs at least 12 characters.", field="password")
    if len(password) > 1024:
        raise ValidationError("A password may have at most 1024 characters.", field="password")
    return password
