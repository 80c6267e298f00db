"""What a host may ask about their own location: its place in the published log, forgetting."""

from __future__ import annotations

import base64
import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.audit.log import AttendanceLog, SignedTreeHead, pseudonym, read_log
from summitcast.audit.log_files import index_path
from summitcast.audit.log_index import LogIndex
from summitcast.audit.proofs import InclusionProof, inclusion_proof_for, verify_inclusion_proof
from summitcast.config import Settings
from summitcast.errors import NotFoundError, PermissionDeniedError
from summitcast.services.attendance.keys import summit_keys
from summitcast.services.attendance.queries import latest_publication, published_log_path
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.tables import AttendancePublication, Location

__all__ = [
    "HostInclusion",
    "check_location_secret",
    "find_for_host",
    "forget_host_data",
    "host_inclusion",
]


def check_location_secret(settings: Settings, location: Location, secret: str) -> None:
    """Refuse unless `secret` is the location's own secret (constant-time comparison)."""
    if not LinkSecrets.of(settings).matches(location, secret):
        raise PermissionDeniedError("This is not the secret of this location's link.")


@dataclass(frozen=True, slots=True)
class HostInclusion:
    """What a host learns about their own location in the published log."""

    published: bool
    pseudonym: str
    country: str  # as the log shows it ("ZZ" when suppressed or hidden)
    buckets: list[int]
    proof: dict[str, Any] | None  # proof of the first bucket, with the signed head
    proof_ok: bool
    message: str
    root_hash: str
    public_key: str


def _buckets_of(log_file: AttendanceLog, name: str) -> Iterator[tuple[int, str]]:
    for bucket in log_file.buckets:
        names = [e.pseudonym for e in bucket.entries]
        at = bisect.bisect_left(names, name)
        if at < len(names) and names[at] == name:
            yield bucket.bucket_start, bucket.entries[at].country


def host_inclusion(
    db: DbSession,
    settings: Settings,
    location: Location,
    secret: str,
    *,
    bucket_start: int | None = None,
) -> HostInclusion:
    """Tell a host (proved by their secret) in which published buckets their location counted."""
    check_location_secret(settings, location, secret)
    summit = location.summit
    publication = latest_publication(db, summit)
    if publication is None:
        return HostInclusion(False, "", "", [], None, False, "Nothing is published yet.", "", "")
    _, audit_secret = summit_keys(settings, summit)
    name = pseudonym(audit_secret, location.public_id)
    path = published_log_path(settings, summit, publication)
    index_file = index_path(path)
    if index_file.exists():
        # The index answers with a B-tree lookup and a few bucket lines: a 4-day
        # log is gigabytes, too much to read on every visit of the page.
        proof_of = _indexed_proof(LogIndex(index_file, path), name, publication, bucket_start)
    else:
        proof_of = _proof_from_whole_log(read_log(path), name, bucket_start)
    if proof_of is None:
        return HostInclusion(
            True,
            name,
            "",
            [],
            None,
            False,
            "Your location is not in the published log: it was not present in any bucket "
            "(at least the rule's heartbeats in 5 minutes) during a session.",
            publication.root_hash,
            publication.public_key,
        )
    starts, country, proof, head = proof_of
    # Checked against the head stored at publication, not only the file's own head.
    check = verify_inclusion_proof(name, proof, head, base64.b64decode(publication.public_key))
    ok = check.ok and head.root_hash.hex() == publication.root_hash
    return HostInclusion(
        True,
        name,
        country,
        starts,
        {"proof": proof.to_json(), "head": head.to_json()},
        ok,
        check.message,
        publication.root_hash,
        publication.public_key,
    )


_Found = tuple[list[int], str, InclusionProof, SignedTreeHead]


def _proof_from_whole_log(
    published: AttendanceLog, name: str, bucket_start: int | None
) -> _Found | None:
    """Find a pseudonym by reading the whole log (publications made before the index)."""
    found = list(_buckets_of(published, name))
    if not found:
        return None
    starts = [start for start, _ in found]
    chosen = bucket_start if bucket_start in starts else starts[0]
    proof = inclusion_proof_for(published, name, chosen)
    return starts, found[0][1], proof, published.final_head


def _indexed_proof(
    index: LogIndex, name: str, publication: AttendancePublication, bucket_start: int | None
) -> _Found | None:
    """Find a pseudonym and prove one of its buckets through the log's index."""
    host = index.host(name)
    if host is None:
        return None
    at = host.starts.index(bucket_start) if bucket_start in host.starts else 0
    head = index.final_head()
    leaf = host.leaves[at]
    path = index.inclusion_path(leaf, head.tree_size)
    proof = InclusionProof(host.starts[at], name, host.country, leaf, head.tree_size, tuple(path))
    return host.starts, host.country, proof, head


def forget_host_data(
    db: DbSession, settings: Settings, location: Location, secret: str
) -> Location:
    """Delete a location's personal data (label, contact); its counts and the log stay intact."""
    check_location_secret(settings, location, secret)
    # Country, privacy level and the attendance rows stay: they are what was counted
    # and published, and none of them names the host.
    location.label = ""
    location.contact = ""
    db.flush()
    return location


def find_for_host(db: DbSession, public_id: str) -> Location:
    """Return a location by public id for a host page (NotFoundError when unknown)."""
    location = db.scalar(select(Location).where(Location.public_id == public_id))
    if location is None:
        raise NotFoundError("No such location.")
    return location
