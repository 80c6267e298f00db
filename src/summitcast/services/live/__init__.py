"""Live presence: verify heartbeats, keep counts, push k-anonymous figures, sample for reports.

- service.py      LiveService: the use cases of one worker, composed of the parts below
- identities.py   the per-worker identity cache and the heartbeat verifier
- figures.py      the public and organiser messages, publishing and figure streams
- transitions.py  arrivals and departures, written in batches and announced
- sampler.py      presence samples for reports
- outages.py      which errors mean a back-end outage, and its log

The wire protocol of a location screen is written down in
web/transport/presence_protocol.py; its background loops run in runtime/presence_tasks.py.

One heartbeat costs a dictionary look-up (identities are cached per worker), one
HMAC, one replay check and one presence update in the back-end; the database is
read only on a cache miss and written in batches by the background tasks.
"""

from summitcast.domain.presence_wire import Reason
from summitcast.services.live.outages import OUTAGE_ERRORS, OutageLog
from summitcast.services.live.service import LiveService, Outcome

__all__ = ["OUTAGE_ERRORS", "LiveService", "OutageLog", "Outcome", "Reason"]
