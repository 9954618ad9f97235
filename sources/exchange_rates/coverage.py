"""The coverage state of the exchange_rates resource: which (date, quote selection) ranges are loaded.

Dates are proleptic Gregorian ordinals (``date.toordinal()``); ranges are inclusive. The state stores
them as ISO date pairs per quote selection (``*`` for all quotes, else the sorted codes).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Final

Interval = tuple[int, int]
"""Inclusive range of proleptic Gregorian ordinals (``date.toordinal()``)."""
ALL_QUOTES: Final = "*"


class RowFilter:
    """Answers "is (quote, day) already loaded?" from the coverage of every quote selection."""

    def __init__(self, coverage: dict[str, list[Interval]]) -> None:
        self._coverage = coverage
        self._by_quote: dict[str, tuple[list[int], list[Interval]]] = {}
        self._any = bool(coverage)

    def covered(self, quote: str, day: int) -> bool:
        if not self._any:
            return False
        if quote not in self._by_quote:
            ranges = merge(
                r
                for selection, intervals in self._coverage.items()
                if selection == ALL_QUOTES or quote in selection.split(",")
                for r in intervals
            )
            self._by_quote[quote] = ([start for start, _ in ranges], ranges)
        starts, ranges = self._by_quote[quote]
        index = bisect.bisect_right(starts, day) - 1
        return index >= 0 and ranges[index][0] <= day <= ranges[index][1]


def covered_for(quotes: Sequence[str], coverage: dict[str, list[Interval]]) -> list[Interval]:
    """Days on which every wanted quote is loaded: all-quote ranges, plus for a quote list the days
    that selections containing each of its quotes cover."""
    every = coverage.get(ALL_QUOTES, [])
    if not quotes:
        return every
    common: list[Interval] | None = None
    for quote in quotes:
        ranges = merge(r for selection, rs in coverage.items() if quote in selection.split(",") for r in rs)
        common = ranges if common is None else intersect(common, ranges)
    return merge([*every, *(common or [])])


# interval arithmetic -------------------------------------------------------------------------------
def merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersect(left: list[Interval], right: list[Interval]) -> list[Interval]:
    result = []
    for a_start, a_end in left:
        for b_start, b_end in right:
            start, end = max(a_start, b_start), min(a_end, b_end)
            if start <= end:
                result.append((start, end))
    return merge(result)


def subtract(wanted: list[Interval], covered: list[Interval]) -> list[Interval]:
    gaps = []
    for start, end in wanted:
        cursor = start
        for c_start, c_end in covered:
            if c_end < cursor or c_start > end:
                continue
            if c_start > cursor:
                gaps.append((cursor, c_start - 1))
            cursor = max(cursor, c_end + 1)
        if cursor <= end:
            gaps.append((cursor, end))
    return gaps


def split_years(interval: Interval) -> list[Interval]:
    """Split at calendar-year boundaries: one request per year keeps each response bounded (about
    8,000 rows for 31 ECB quotes) and well inside Frankfurter's limit of 5 years per daily range, which
    applies because ``providers`` is always sent (see ``docs/exchange_rates.md``)."""
    start, end = interval
    chunks = []
    while start <= end:
        year_end = dt.date(dt.date.fromordinal(start).year, 12, 31).toordinal()
        chunks.append((start, min(end, year_end)))
        start = year_end + 1
    return chunks


def from_state(ranges: list[list[str]]) -> list[Interval]:
    return merge(
        (dt.date.fromisoformat(a).toordinal(), dt.date.fromisoformat(b).toordinal()) for a, b in ranges
    )


def to_state(ranges: list[Interval]) -> list[list[str]]:
    return [[dt.date.fromordinal(a).isoformat(), dt.date.fromordinal(b).isoformat()] for a, b in ranges]
