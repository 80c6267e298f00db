"""Attendance: count accepted heartbeats per bucket, store them, publish the signed public log.

The path of one heartbeat: LiveService accepts it and calls `AttendanceRecorder.count`
(a dictionary increment in this worker's memory); a background task moves closed
buckets into `attendance_counts`: one row per (summit, bucket, writer) holding packed
arrays of location ids and heartbeat counts (`recording`).  `publish_attendance`
turns those rows into the public attendance log (summitcast.audit.log) and keeps its
final signed head (`publication`, or `live` while the event runs).  The report's
figures are counted in `figures`; hosts ask about their own location in `hosts`.
Each summit's signing key and audit secret are files, never rows (summitcast.audit.keys).

The names below are the ones the web edge, the app and the tools use.
"""

from summitcast.services.attendance.figures import AttendanceData, attendance_data
from summitcast.services.attendance.hosts import (
    HostInclusion,
    check_location_secret,
    find_for_host,
    forget_host_data,
    host_inclusion,
)
from summitcast.services.attendance.keys import public_key_b64, summit_keys
from summitcast.services.attendance.live import (
    LivePublisher,
    advance_live_log,
    live_heads,
    live_log_is_open,
    live_log_length,
    live_log_path,
    start_live_publishing,
)
from summitcast.services.attendance.publication import publish_attendance
from summitcast.services.attendance.queries import (
    counting_rule,
    latest_publication,
    published_log_path,
    session_windows,
    stored_counts,
)
from summitcast.services.attendance.recording import (
    AttendanceRecorder,
    add_bucket_counts,
    store_bucket_counts,
)

__all__ = [
    "AttendanceData",
    "AttendanceRecorder",
    "HostInclusion",
    "LivePublisher",
    "add_bucket_counts",
    "advance_live_log",
    "attendance_data",
    "check_location_secret",
    "counting_rule",
    "find_for_host",
    "forget_host_data",
    "host_inclusion",
    "latest_publication",
    "live_heads",
    "live_log_is_open",
    "live_log_length",
    "live_log_path",
    "public_key_b64",
    "publish_attendance",
    "published_log_path",
    "session_windows",
    "start_live_publishing",
    "store_bucket_counts",
    "stored_counts",
    "summit_keys",
]
