"""What the benchmarks read of running processes from /proc."""

from __future__ import annotations

import os
from pathlib import Path


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in the process group pgid."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
