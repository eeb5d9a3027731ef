"""Per-device sequence tracking: which of a device's messages have been stored, and where the gaps are.

Every journaled message of an agent (events and heartbeats) carries a `seq` from one counter. The server
keeps the highest *contiguous* seq it has (everything up to it is stored, or was reported lost by the
agent) and the ranges received above it. That number is what the server acknowledges: the agent deletes
its journal up to it. Pure functions: no clock, no database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Stream:
    journal: str | None
    contig: int  # every seq <= contig is stored (or was reported lost)
    pending: Ranges = ()  # ranges received above contig + 1, ascending, disjoint
    gap_since: datetime | None = None  # when a gap (a seq missing below a received one) was first seen

    @property
    def has_gap(self) -> bool:
        return bool(self.pending)

    @property
    def missing(self) -> int:
        """How many seqs are missing below the highest received one."""
        missing, edge = 0, self.contig
        for first, last in self.pending:
            missing += first - edge - 1
            edge = last
        return missing


def add_range(ranges: Ranges, first: int, last: int) -> Ranges:
    """Insert [first, last] into sorted disjoint ranges, merging neighbours and overlaps."""
    merged: list[tuple[int, int]] = []
    placed = False
    for lo, hi in ranges:
        if hi + 1 < first:
            merged.append((lo, hi))
        elif last + 1 < lo:
            if not placed:
                merged.append((first, last))
                placed = True
            merged.append((lo, hi))
        else:
            first, last = min(first, lo), max(last, hi)
    if not placed:
        merged.append((first, last))
    return tuple(sorted(merged))


def receive(stream: Stream | None, journal: str | None, first: int, last: int, floor: int | None,
            at: datetime) -> Stream:
    """Account for seqs first..last of a device's journal.

    `floor` is the agent's own statement that everything up to it was acknowledged before (and deleted from
    its journal): it never makes us wait for those again, e.g. after our database was restored from backup.
    A different journal id (a new SD card, a reinstalled agent) starts a new stream.
    """
    if stream is not None and stream.journal is None and journal is not None:
        stream = replace(stream, journal=journal)  # seen first through a message without its journal id
    if stream is None or stream.journal != journal:
        base = floor if floor is not None else first - 1
        stream = Stream(journal=journal, contig=max(base, 0))
    contig = max(stream.contig, floor or 0)
    pending = tuple((max(lo, contig + 1), hi) for lo, hi in stream.pending if hi > contig)
    if last > contig:
        pending = add_range(pending, max(first, contig + 1), last)
    while pending and pending[0][0] <= contig + 1:
        contig = max(contig, pending[0][1])
        pending = pending[1:]
    gap_since = (stream.gap_since or at) if pending else None
    return replace(stream, contig=contig, pending=pending, gap_since=gap_since)
