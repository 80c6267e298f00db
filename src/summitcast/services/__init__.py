"""Use cases: each public function is one thing a user does.

The web edge imports neither SQLAlchemy nor storage: the names it types what use cases
take and hand back with (the unit of work, the database handle, the rows) come from here.
"""

from sqlalchemy import orm

from summitcast.storage import tables
from summitcast.storage.database import Database
from summitcast.storage.tables import (
    AttendancePublication,
    Item,
    Speaker,
    SpeakerInvitation,
    Summit,
    Upload,
    User,
)

# A session of a summit's programme (a row), not to be confused with the unit of work.
ProgrammeSession = tables.Session
# The unit of work a use case runs in (one per request, committed by the web's DbDep).
DbSession = orm.Session

__all__ = [
    "AttendancePublication",
    "Database",
    "DbSession",
    "Item",
    "ProgrammeSession",
    "Speaker",
    "SpeakerInvitation",
    "Summit",
    "Upload",
    "User",
]
