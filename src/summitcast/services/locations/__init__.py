"""Watch locations: register, review (approve, revoke, re-issue), list, export; what presence needs.

The rules (statuses, kinds, privacy placement) live in summitcast.domain.locations; the
use cases are split by concept:

- registration  one from the public form, many at once, auto-approval
- queries       one by id, a filtered page for review, counts, arrivals and drops
- review        approve, revoke, re-issue a link; commit and tell every worker
- presence      identities for the heartbeat path, transitions, samples
- export        every location as CSV
"""

from summitcast.domain.locations import (
    FIELD_NAMES,
    KINDS,
    LOCATION_SORTS,
    MAX_AUDIENCE,
    STATUSES,
    LocationFilter,
    LocationInput,
    LocationStatus,
    PresenceIdentity,
    Transition,
    cell_key,
    parse_cell_key,
    resolve_privacy,
)
from summitcast.services.locations.export import CSV_COLUMNS, locations_csv
from summitcast.services.locations.presence import (
    KnownIdentities,
    identities_of_live_summits,
    identity_of,
    live_summit_ids,
    load_identity,
    record_sample,
    record_transitions,
    samples_of,
)
from summitcast.services.locations.queries import (
    LocationPage,
    ReviewListing,
    approved_by_country,
    find_location,
    get_location,
    location_filter,
    newest_arrivals,
    page_of_locations,
    recent_drops,
    registered_location,
    review_listing,
    status_counts,
)
from summitcast.services.locations.registration import (
    BulkRegistered,
    auto_approves,
    register_location,
    register_locations_bulk,
    set_auto_approve,
    validate_country,
)
from summitcast.services.locations.review import (
    BULK_SLICE,
    Dashboard,
    LocationsLive,
    approve_location,
    approve_matching,
    approve_selected,
    reissue_link,
    revoke_location,
)

__all__ = [
    "BULK_SLICE",
    "CSV_COLUMNS",
    "FIELD_NAMES",
    "KINDS",
    "LOCATION_SORTS",
    "MAX_AUDIENCE",
    "STATUSES",
    "BulkRegistered",
    "Dashboard",
    "KnownIdentities",
    "LocationFilter",
    "LocationInput",
    "LocationPage",
    "LocationStatus",
    "LocationsLive",
    "PresenceIdentity",
    "ReviewListing",
    "Transition",
    "approve_location",
    "approve_matching",
    "approve_selected",
    "approved_by_country",
    "auto_approves",
    "cell_key",
    "find_location",
    "get_location",
    "identities_of_live_summits",
    "identity_of",
    "live_summit_ids",
    "load_identity",
    "location_filter",
    "locations_csv",
    "newest_arrivals",
    "page_of_locations",
    "parse_cell_key",
    "recent_drops",
    "record_sample",
    "record_transitions",
    "register_location",
    "register_locations_bulk",
    "registered_location",
    "reissue_link",
    "resolve_privacy",
    "review_listing",
    "revoke_location",
    "samples_of",
    "set_auto_approve",
    "status_counts",
    "validate_country",
]
