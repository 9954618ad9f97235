"""Hypothesis strategies for provider responses: valid records broken on purpose, then encoded, cut,
mistyped or blown up, and served with an ordinary or an odd status.

A generated :class:`Served` answer is scripted into a look-alike with its fault injection
(:meth:`tests.fakes.base.FakeApi.fail`), so the source reads it over real HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

HUGE_TEXT = st.sampled_from([10_000, 1_000_000]).map(lambda n: "N" * n)
HUGE_NUMBERS = st.sampled_from([10**400, -(10**400), 1e308, -1e308, 5e-324, 2**63, 2**64 + 1])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "0", "-1", "1e999", "NaN", "true", "2026-02-30", "0000-01-01", "9999-12-31"]),
    HUGE_NUMBERS,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
"""Any JSON value: strings for numbers, nulls, nested objects and lists, huge and non-finite numbers."""
ODD_VALUES = st.one_of(JSON_VALUES, HUGE_TEXT)

ERROR_STATUSES = [
    201, 202, 204, 206, 301, 304, 400, 401, 403, 404, 405, 409, 414, 418, 422, 429, 500, 502, 503
]  # fmt: skip


@dataclass
class Served:
    """One answer: status, body bytes, headers; ``records`` is what was encoded (before any damage)."""

    status: int
    body: bytes
    headers: dict[str, str]
    records: Any = None
    damaged: bool = False
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # a megabyte body would drown the report of a failing example
        body = self.body if len(self.body) <= 600 else self.body[:300] + b"..." + self.body[-100:]
        return (
            f"Served(status={self.status}, headers={self.headers}, damage={self.notes}, "
            f"{len(self.body)} bytes: {body!r})"
        )

    @property
    def clean(self) -> bool:
        """A 200 with the whole, undamaged body: the only answer that may load."""
        return self.status == 200 and not self.damaged


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> dict[str, Any]:
    """``valid`` with up to three fields dropped, retyped (any JSON value) or added."""
    record = dict(valid)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["drop", "retype", "retype", "extra"]))
        key = draw(st.sampled_from(sorted(valid)))
        if kind == "drop":
            record.pop(key, None)
        elif kind == "retype":
            record[key] = draw(ODD_VALUES)
        else:
            record[draw(st.text(min_size=1, max_size=12))] = draw(JSON_VALUES)
    return record


@st.composite
def with_duplicates(draw: st.DrawFn, records: st.SearchStrategy[list[Any]]) -> list[Any]:
    """Lists of records in which one record may be repeated (same key, perhaps another value)."""
    items = list(draw(records))
    repeat: bool = draw(st.booleans())
    if items and repeat:
        where: int = draw(st.integers(0, len(items)))
        which: int = draw(st.integers(0, len(items) - 1))
        items.insert(where, items[which])
    return items


def _encode(payload: Any, ndjson: bool) -> bytes:
    if ndjson and isinstance(payload, list):
        return "".join(json.dumps(item) + "\n" for item in payload).encode()
    return json.dumps(payload).encode()


@st.composite
def served(
    draw: st.DrawFn, payloads: st.SearchStrategy[Any], *, content_type: str = "application/json"
) -> Served:
    """An answer carrying a generated payload, mostly as the provider would send it, often damaged."""
    payload = draw(payloads)
    ndjson = content_type == "application/x-ndjson"
    body = _encode(payload, ndjson)
    headers = {"Content-Type": content_type}
    answer = Served(200, body, headers, records=payload)
    damage = draw(
        st.sampled_from(
            ["none", "none", "none", "truncate", "garbage", "deep", "wrong-type", "content-type", "status"]
        )
    )
    if damage == "truncate" and len(body) > 1:
        answer.body, answer.damaged = body[: draw(st.integers(1, len(body) - 1))], True
    elif damage == "garbage":
        answer.body, answer.damaged = draw(st.binary(max_size=200)), True
    elif damage == "deep":  # a body deeper than any parser's recursion limit
        depth = draw(st.sampled_from([1_000, 100_000]))
        answer.body, answer.damaged = b"[" * depth + b"]" * depth, True
    elif damage == "wrong-type":  # valid JSON, not the documented shape
        answer.body, answer.damaged = json.dumps(draw(JSON_VALUES)).encode(), True
    elif damage == "content-type":
        answer.headers = {"Content-Type": draw(st.sampled_from(["text/html", "text/plain", ""]))}
        if not answer.headers["Content-Type"]:
            answer.headers = {}
    elif damage == "status":
        answer.status, answer.damaged = draw(st.sampled_from(ERROR_STATUSES)), True
        answer.body = draw(st.sampled_from([answer.body, b"", b"<html>odd</html>", b'{"message": 1}']))
        if answer.status == 429:
            answer.headers["Retry-After"] = "0"  # a bounded wait: the retries are not what is fuzzed
    answer.notes.append(damage)
    return answer
