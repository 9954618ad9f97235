"""Change data capture for the products source: what each table of a run reads.

With ``change_capture = "logical"`` a run reads the publication's changes since the slot's confirmed
position (:mod:`sources.products.replication`) and then, per table with a key:

- **read in full and merged** (a snapshot) when the table has not been captured before (the first run,
  or a table newly added to the publication), when the stream says it was truncated, when its changes
  do not carry its configured key, when a column was added to it (a default fills rows the stream
  never mentions), or when the slot is not where the last load left it (lost and
  created again, or advanced by someone else): rows deleted meanwhile are then found by a key sweep;
- **re-read by key** when it changed: the current rows of the changed keys, merged, and the keys the
  table no longer has deleted (or flagged) in the warehouse after the load;
- **not read** when nothing changed.

Tables with a key that the publication does not hold load the cursor way, as with ``"cursor"``;
tables without a key are replaced, as always. The slot is confirmed by the pipeline after the load.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import dlt
import sqlalchemy as sa
from dlt.extract.resource import DltResource

from sources.products.catalogue import LoadPlan
from sources.products.replication import (
    CHECK_COMMAND,
    ChangeSet,
    confirm,
    lsn_int,
    lsn_text,
    prepare,
    read_changes,
)

STATE_KEY: Final = "change_capture"
"""The source state's entry: the slot, the position the last load reached, the tables captured."""
CAPTURE_MODES: Final = ("cursor", "logical")
CAPTURE_RESOURCE: Final = "_products_change_capture"
"""The resource (it loads no table) that records the slot's position in the source state."""


@dataclass
class Capture:
    """One run's reading of the slot, and what it means for each table."""

    engine: sa.Engine
    slot: str
    publication: str
    changes: ChangeSet
    start: int
    captured: dict[str, tuple[str, ...]]
    snapshots: dict[str, str] = field(default_factory=dict)
    """Tables read in full this run, and why."""
    changed: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)
    """Tables re-read by key, with the changed keys (PostgreSQL's text form)."""
    not_captured: list[str] = field(default_factory=list)
    columns: dict[str, list[str]] = field(default_factory=dict)
    """Each captured table's columns now: a column added later makes the next run read it in full."""
    left_out: Collection[str] = field(default_factory=set)
    """Tables this run leaves out (a read that failed): not recorded as captured, so the next run
    reads them in full; the pipeline shares its live record of them."""

    @property
    def reached(self) -> int:
        return max(self.changes.reached, self.start)

    def state(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "publication": self.publication,
            "reached": lsn_text(self.reached),
            "tables": sorted(self.recorded_tables),
            "columns": {name: self.columns.get(name, []) for name in sorted(self.recorded_tables)},
        }

    @property
    def recorded_tables(self) -> set[str]:
        return {name for name in self.captured if name not in self.left_out}

    def confirm(self) -> None:
        """Confirm the slot up to what this run read (call only once its load committed)."""
        confirm(self.engine, self.slot, self.reached)

    def notes(self) -> list[str]:
        keys = sum(len(found) for found in self.changed.values())
        lines = [
            f"change capture: {self.changes.changes:,} change(s) read from slot {self.slot}"
            f" ({lsn_text(self.start)} to {lsn_text(self.reached)}), {keys:,} key(s) re-read in"
            f" {len(self.changed)} table(s)"
        ]
        lines += [f"change capture: {table} read in full: {why}" for table, why in self.snapshots.items()]
        if self.not_captured:
            lines.append(
                f"change capture: {', '.join(self.not_captured)} not in the publication {self.publication},"
                f" loaded by cursor with the key sweep; `{CHECK_COMMAND}` says whether `setup` can add them"
                " (a table PostgreSQL cannot identify rows of needs REPLICA IDENTITY first)"
            )
        return lines


def plan_capture(
    engine: sa.Engine,
    schema: str,
    plans: list[LoadPlan],
    *,
    slot: str,
    publication: str,
    recorded: dict[str, Any],
    columns: dict[str, list[str]],
) -> Capture:
    """Read the slot's changes and decide how each table with a key loads (module docstring)."""
    keyed = [plan for plan in plans if plan.primary_key]
    prepared = prepare(engine, schema, publication, slot)
    captured = {plan.name: plan.primary_key for plan in keyed if plan.name in prepared.published}
    changes = read_changes(engine, slot, publication, keys=captured, schema=schema)
    capture = Capture(engine, slot, publication, changes, prepared.slot.confirmed, captured)
    capture.not_captured = [plan.name for plan in keyed if plan.name not in captured]
    capture.columns = {name: columns[name] for name in captured}
    known = recorded.get("columns") or {}
    before = set(recorded.get("tables", ())) if recorded.get("slot") == slot else set()
    lost = None
    if before and prepared.created:
        lost = f"the replication slot {slot} was missing and has been created again"
    elif before and recorded.get("reached") and prepared.slot.confirmed > lsn_int(recorded["reached"]):
        lost = (
            f"the replication slot {slot} is past the position the last load reached"
            f" ({lsn_text(prepared.slot.confirmed)} > {recorded['reached']}): changes in between may be lost"
        )
    for name in captured:
        if lost:
            capture.snapshots[name] = lost
        elif name not in before:
            capture.snapshots[name] = (
                "first read through the slot" if not before else "new in the publication"
            )
        elif set(columns[name]) - set(known.get(name, columns[name])):
            added = sorted(set(columns[name]) - set(known[name]))
            capture.snapshots[name] = f"column(s) added in the source: {', '.join(added)}"
        elif name in changes.truncated:
            capture.snapshots[name] = "truncated in the source"
        elif name in changes.undecodable:
            capture.snapshots[name] = "its changes do not carry its key (the key is not its replica identity)"
        elif changes.keys.get(name):
            capture.changed[name] = changes.keys[name]
    return capture


def state_resource(capture: Capture) -> DltResource:
    """A resource loading no rows that records the run's capture in the source state, so that the
    position reached is committed with the load (the pipeline confirms the slot after it); the
    pipeline finds ``capture`` on it."""

    @dlt.resource(name=CAPTURE_RESOURCE, selected=True)
    def change_capture() -> Iterator[Any]:
        dlt.current.source_state()[STATE_KEY] = capture.state()
        yield from ()

    resource = change_capture()
    resource.capture = capture  # type: ignore[attr-defined]
    return resource
