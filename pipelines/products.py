"""Products pipeline: PostgreSQL product tables -> Snowflake ``RAW.PRODUCTS`` (incremental merge).

uv run python -m pipelines.products [--full-refresh] [--start-date YYYY-MM-DD]
DLT__DESTINATION=duckdb uv run python -m pipelines.products   # local warehouse instead
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import sys
from collections.abc import Collection
from typing import Any

import dlt
import pendulum
from dlt.pipeline.exceptions import PipelineStepFailed

from sources.products import close_connections, products_source
from sources.products.capture import CAPTURE_RESOURCE, Capture
from utils.destinations import get_destination
from utils.key_sweep import apply_deletes, sweep_table
from utils.report import describe_error
from utils.runner import RunReport, TablesLeftOut, failed_report, iso_date, run_cli, run_pipeline
from utils.schema_evolution import ColumnChange, carry_schema_changes

logger = logging.getLogger("data_pipelines.products")

PIPELINE_NAME = "products"
SWEPT_AT = "key_sweep_at"
"""Local pipeline state: when the last key sweep ran (a fresh worker sweeps on its first run)."""
DATASET_NAME = "products"


def create_pipeline() -> dlt.Pipeline:
    """The products pipeline on its configured destination (Snowflake unless DLT__DESTINATION says)."""
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=get_destination("snowflake"),
        dataset_name=DATASET_NAME,
    )


def run(*, full_refresh: bool = False, start_date: dt.date | str | None = None) -> RunReport:
    """Load rows changed since the last run (merge); settings come from ``[sources.products]``.

    ``full_refresh`` forgets the incremental cursor (dlt resets a resource's state on ``replace``)
    and reloads every live row with ``replace``: one transaction swaps the table's rows for the new
    ones (on Snowflake from the staging schema, on DuckDB straight from the run's files), so readers
    never see an empty table and a failed load keeps the last good rows; the table is not dropped, so
    Snowflake grants survive. The next run merges again.
    ``start_date`` re-reads rows changed on or after that date (UTC) up to now and merges them; on
    its own it leaves the daily cursor where it was, with ``full_refresh`` it is where the reload
    starts.
    With ``change_capture = "logical"`` the tables in the publication load by the replication slot's
    changes instead of the cursor: after the load, the changed keys the source no longer has are
    deleted (or flagged), tables read in full are swept, and only then is the slot confirmed
    (:func:`apply_captured_changes`; docs/products.md, "Change data capture").
    """
    pipeline = create_pipeline()
    options: dict[str, Any] = {"write_disposition": "replace"} if full_refresh else {}
    if (
        pipeline.destination
        and pipeline.destination.destination_name == "snowflake"
        and dlt.config.get("sources.products.json_as_objects", bool) is not False
    ):
        options["json_as_objects"] = True  # JSON lands as VARIANT objects, not strings (docs/products.md)
    if start_date is not None:
        start = pendulum.parse(str(start_date), tz="UTC")
        options["initial_value"] = start
        if not full_refresh:
            options["end_value"] = pendulum.now("UTC")
    carried: list[ColumnChange] = []
    built: list[Any] = []
    failed: dict[str, str] = {}
    """Tables left out of this run, with why: a read that failed, a schema change refused."""

    def source() -> Any:
        # built after the runner has synced state and schemas from the destination: the source's
        # column changes are compared with what is loaded, and carried (or refused) before extracting;
        # a table whose change is refused is left out, the others load
        data = products_source(**options)
        built.append(data)
        if (capture := _capture_of(data)) is not None:
            capture.left_out = failed  # filled by the runner as tables fail, read when the state is saved
        carried.extend(
            carry_schema_changes(
                pipeline, data, replacing=full_refresh, refused=failed, setting_name=setting_name
            )
        )
        return data

    try:
        report = run_pipeline(pipeline, source, failed_tables=failed)
    except PipelineStepFailed as exc:
        report_ = failed_report(exc)
        if report_ is not None and report_.extracted and isinstance(exc.exception, TablesLeftOut):
            _finish(pipeline, report_, carried, built, full_refresh, complete=False)  # the others loaded
        raise
    else:
        _finish(pipeline, report, carried, built, full_refresh)
    finally:
        for data in built:
            close_connections(data)
    return report


def _finish(
    pipeline: dlt.Pipeline,
    report: RunReport,
    carried: list[ColumnChange],
    built: list[Any],
    full_refresh: bool,
    *,
    complete: bool = True,
) -> None:
    """The report's notes, the captured changes' deletes and the slot's confirmation (change capture),
    and the key sweep of the tables this run loaded (``built[-1]``'s selected resources; tables left
    out are deselected there). ``complete`` is False when tables were left out: the slot is still
    confirmed (a table left out is not recorded as captured, so the next run reads it in full and sweeps
    it), so that a table failing for days never holds the source's WAL back."""
    report.notes += [f"column widened: {change}" for change in carried]
    capture = _capture_of(built[-1]) if built else None
    swept: set[str] = set()
    if capture is not None and report.extracted:  # this attempt's own extract loaded: finish it
        swept = set(capture.snapshots)  # read in full and swept just now
        report.notes += capture.notes()
        try:
            report.notes += apply_captured_changes(pipeline, built[-1], capture, skip=set(report.new_tables))
            capture.confirm()
            report.notes.append(
                f"change capture: slot {capture.slot} confirmed up to {capture.state()['reached']}"
                + ("" if complete else " (the tables left out are read in full by the next run)")
            )
        except Exception as exc:  # the load stands; the slot stays, so the next run reads these changes again
            logger.error("products: applying captured deletes failed: %s", describe_error(exc))
            report.notes.append(
                f"change capture: deletes not applied, slot {capture.slot} not confirmed (the next run reads"
                f" these changes again): {describe_error(exc)}"
            )
    if built and not full_refresh:
        try:
            # tables read by key are swept too, at the sweep's cadence: partitions dropped, detached or
            # truncated on their own leave nothing in the stream
            skip = set(report.new_tables) | {_table_name(pipeline, name) for name in swept}
            report.notes += sweep_deleted_keys(pipeline, built[-1], skip=skip, complete=complete)
        except Exception as exc:  # the load stands; rows deleted in the source wait for the next sweep
            logger.error("products: the key sweep failed: %s", describe_error(exc))
            report.notes.append(f"key sweep failed, the next run sweeps again: {describe_error(exc)}")


def setting_name(resource: Any) -> str:
    """How ``tables`` names a resource's table: ``billing.invoices`` for a table of a schema listed
    after the first (loaded as ``billing__invoices``), else the table's own name."""
    plan = resource.load_plan
    return plan.name if plan.resource == plan.name else f"{plan.schema}.{plan.name}"


def _capture_of(source: Any) -> Capture | None:
    resource = source.resources.get(CAPTURE_RESOURCE)
    return getattr(resource, "capture", None)


def _table_name(pipeline: dlt.Pipeline, name: str) -> str:
    """The warehouse table of a table of the first schema, as dlt names it (``__`` kept)."""
    return str(pipeline.default_schema.naming.normalize_tables_path(name))


def _soft_delete_flag() -> bool:
    return (dlt.config.get("sources.products.soft_delete", str) or "remove") == "flag"


def apply_captured_changes(
    pipeline: dlt.Pipeline, source: Any, capture: Capture, skip: Collection[str] = ()
) -> list[str]:
    """After the load of a change-capture run: delete (or flag) the changed keys the source no longer
    has, and sweep the tables read in full (rows deleted while the slot did not cover them), but those in
    ``skip`` (first loaded by this run). Returns the report's lines."""
    flag = _soft_delete_flag()
    naming = pipeline.default_schema.naming
    lines = []
    with pipeline.sql_client() as client:
        for name, resource in source.selected_resources.items():
            plan = getattr(resource, "load_plan", None)
            if plan is None or (plan.name not in capture.changed and plan.name not in capture.snapshots):
                continue
            table = naming.normalize_tables_path(plan.resource)  # as dlt names it: "__" kept
            key = [naming.normalize_identifier(column) for column in plan.primary_key]
            flag_column = (
                naming.normalize_identifier(plan.soft_delete_column) if plan.soft_delete_column else None
            )
            if plan.name in capture.snapshots:
                if table in skip:
                    continue
                result = sweep_table(
                    client, table, key, resource.read_keys, soft_delete_column=flag_column, flag=flag
                )
                if result is not None:
                    lines.append(str(result))
                continue
            gone = resource.missing_keys()
            if gone.num_rows:
                apply_deletes(client, table, key, gone.rename_columns(key), flag_column if flag else None)
            lines.append(
                f"change capture: {name}: {len(capture.changed[plan.name]):,} changed key(s) re-read,"
                f" {gone.num_rows:,} deleted in the source {'flagged' if flag and flag_column else 'removed'}"
            )
    return lines


def sweep_deleted_keys(
    pipeline: dlt.Pipeline, source: Any, skip: Collection[str] = (), *, complete: bool = True
) -> list[str]:
    """Remove (or flag) rows whose key the source no longer has, in every merged table but those in
    ``skip`` (first loaded by this run): the key sweep (:mod:`utils.key_sweep`), at most once per
    ``key_sweep_hours`` (``[sources.products]``; 0: every run); ``key_sweep = false`` turns it off.
    ``complete = False`` (tables were left out of the run) sweeps without recording the time, so the
    next run sweeps every table again. Returns the report's lines, with each sweep's cost."""
    if dlt.config.get("sources.products.key_sweep", bool) is False:
        return []
    every = dlt.config.get("sources.products.key_sweep_hours", float) or 0.0
    now = pendulum.now("UTC")
    with contextlib.suppress(KeyError):
        last = pendulum.parse(str(pipeline.get_local_state_val(SWEPT_AT)))
        if every and now.diff(last).in_seconds() < every * 3600:  # type: ignore[arg-type]
            return [f"key sweep skipped: the last was at {last} (key_sweep_hours = {every:g})"]
    flag = _soft_delete_flag()
    naming = pipeline.default_schema.naming
    lines = []
    with pipeline.sql_client() as client:
        for resource in source.selected_resources.values():
            plan = getattr(resource, "load_plan", None)
            if plan is None:  # the change capture's state resource
                continue
            table = naming.normalize_tables_path(plan.resource)  # as dlt names it: "__" kept
            if plan.disposition != "merge" or table in skip:
                continue
            result = sweep_table(
                client,
                table,
                [naming.normalize_identifier(column) for column in plan.primary_key],
                resource.read_keys,
                soft_delete_column=naming.normalize_identifier(plan.soft_delete_column)
                if plan.soft_delete_column
                else None,
                flag=flag,
            )
            if result is not None:
                lines.append(str(result))
    if complete:
        pipeline.set_local_state_val(SWEPT_AT, now.isoformat())  # only once every table was swept
    return lines


def source_checks() -> list[Any]:
    """The replication slot's health when ``change_capture = "logical"`` (``python -m pipelines
    status``, the checks flow); nothing otherwise. Never raises."""
    from sources.products.slot import slot_checks

    return slot_checks()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.products", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help=(
            "forget the cursor and reload every live row; one transaction swaps the rows (the tables"
            " are never left empty or dropped)"
        ),
    )
    parser.add_argument(
        "--start-date",
        type=iso_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="re-read rows changed on or after this date (UTC)",
    )
    args = parser.parse_args(argv)
    return run_cli(lambda: run(full_refresh=args.full_refresh, start_date=args.start_date))


if __name__ == "__main__":
    sys.exit(main())
