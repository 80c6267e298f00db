"""The counting rule's tally over bucket columns held as numpy arrays (verification workers).

`AttendanceTally` counts Python strings: for 57 million entries, hashing a fresh
string per entry into three dictionaries cost a verification worker about as much
as the Merkle hashing.  Here every pseudonym seen gets a row in sorted arrays and
a bucket adds one to its rows, found with a binary search; at the end the totals
become an `AttendanceTally`, so the figures come from the domain's own rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from summitcast.domain.attendance import AttendanceTally, CountingRule, SessionWindow
from summitcast.errors import ValidationError

__all__ = ["ColumnTally"]

Names = npt.NDArray[np.bytes_]  # "S32" pseudonyms or "S2" countries
Counts = npt.NDArray[np.int64]


class ColumnTally:
    """Counts buckets given as sorted pseudonym and country arrays, in time order."""

    def __init__(self, sessions: Sequence[SessionWindow], rule: CountingRule) -> None:
        """Start with no pseudonym; the same arguments as `AttendanceTally`."""
        self._sessions = tuple(sessions)
        self._rule = rule
        self._session_starts = AttendanceTally(sessions, rule).session_bucket_starts()
        self._keys: Names = np.empty(0, "S32")
        self._country: Names = np.empty(0, "S2")
        self._present: Counts = np.zeros(0, np.int64)
        self._session_present: list[Counts] = [np.zeros(0, np.int64) for _ in self._sessions]
        self._session_peak: list[tuple[int, int | None]] = [(0, None) for _ in self._sessions]
        self._timeline: list[tuple[int, int]] = []

    def add(self, start: int, pseudonyms: Names, countries: Names) -> None:
        """Count one bucket: strictly sorted pseudonyms ("S32") and their countries ("S2").

        Refuses what `AttendanceTally.add_columns` refuses, with the same messages.
        """
        if start % self._rule.bucket_seconds:
            raise ValidationError(f"bucket start {start} is not aligned to the bucket length")
        if self._timeline and start <= self._timeline[-1][0]:
            raise ValidationError(
                f"bucket {start} does not come after bucket {self._timeline[-1][0]}"
            )
        at = np.searchsorted(self._keys, pseudonyms)
        inside = at < len(self._keys)
        known = np.zeros(len(pseudonyms), bool)
        known[inside] = self._keys[at[inside]] == pseudonyms[inside]
        changed = np.flatnonzero(known)[self._country[at[known]] != countries[known]]
        if changed.size:
            first = int(changed[0])
            # As the domain tally does: newcomers before the offending entry are kept.
            before = ~known[:first]
            self._insert(pseudonyms[:first][before], countries[:first][before])
            was = self._country[np.searchsorted(self._keys, pseudonyms[first])]
            raise ValidationError(
                f"{pseudonyms[first].decode()} is in {was.decode()} "
                f"and in {countries[first].decode()}"
            )
        if not known.all():
            self._insert(pseudonyms[~known], countries[~known])
            at = np.searchsorted(self._keys, pseudonyms)
        # Pseudonyms are distinct within a bucket, so each row gets exactly one.
        self._present[at] += 1
        concurrent = len(pseudonyms)
        self._timeline.append((start, concurrent))
        for index, starts in enumerate(self._session_starts):
            if start in starts:
                self._session_present[index][at] += 1
                # Strict ">" keeps the earliest bucket on ties, since buckets come in order.
                if concurrent > self._session_peak[index][0]:
                    self._session_peak[index] = (concurrent, start)

    def _insert(self, keys: Names, countries: Names) -> None:
        """Give new pseudonyms (sorted, none known yet) rows with zero counts."""
        if not len(keys):
            return
        where = np.searchsorted(self._keys, keys)
        self._keys = np.insert(self._keys, where, keys)
        self._country = np.insert(self._country, where, countries)
        self._present = np.insert(self._present, where, 0)
        self._session_present = [np.insert(a, where, 0) for a in self._session_present]

    def tally(self) -> AttendanceTally:
        """Return everything counted as the domain's tally (to merge, then `figures()`)."""
        names = [key.decode() for key in self._keys.tolist()]
        countries = [code.decode() for code in self._country.tolist()]

        def counted(counts: Counts) -> dict[str, int]:
            # A key absent from a session must not appear with 0: the rule reads presence.
            return {n: c for n, c in zip(names, counts.tolist(), strict=True) if c}

        return AttendanceTally.from_totals(
            self._sessions,
            self._rule,
            country=dict(zip(names, countries, strict=True)),
            present=counted(self._present),
            session_present=[counted(a) for a in self._session_present],
            session_peak=self._session_peak,
            timeline=self._timeline,
        )
