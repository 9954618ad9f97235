"""Change data capture set-up for the products source: is PostgreSQL ready, make it ready, undo it.

    uv run python -m tools.postgres_cdc check              # what is missing, with fixes; exit 1 if not ready
    uv run python -m tools.postgres_cdc setup              # create what the role may, print SQL for the rest
    uv run python -m tools.postgres_cdc setup --print-sql  # only print the SQL (for a DBA), change nothing
    uv run python -m tools.postgres_cdc drop [--publication]   # the next run loads every table again

Settings and credentials are ``[sources.products]``'s, resolved as a run resolves them (environment,
``.dlt/`` files, the vault): ``slot_name`` and ``publication_name`` (both ``data_pipelines_products``
by default) and the tables discovery selects (``schema``, ``tables``, ``exclude``, ``views``). The
publication holds only the selected tables PostgreSQL can publish updates and deletes of: a table
without a primary key (or replica identity) in a publication that publishes updates makes the
application's own ``UPDATE`` and ``DELETE`` on it fail, so such tables are left out and named. The
slot is created after the publication (``pgoutput`` looks the publication up as of each change it
decodes). Passwords are never printed. Owner: data platform team (#data-platform); the operator's
guide is docs/products.md, "Change data capture: set-up and operation".
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import sqlalchemy as sa

from sources.products.slot import capture_settings, connect, safe_error, source_config
from tools.postgres_cdc_plan import (
    Source,
    may_publish,
    parameter_fix,
    publication_sql,
    read_source,
    replication_fix,
    slot_sql,
)
from utils import vault_provider
from utils.pg_replication import PLUGIN, identifier, literal

MIN_VERSION = 13
"""``publish_via_partition_root`` and ``pg_replication_slots.wal_status`` arrived in PostgreSQL 13."""
RESNAPSHOT_WARNING = (
    "WARNING: without its slot, the next products run loads every published table again from a"
    " fresh snapshot (a first run's cost); changes made meanwhile are not lost."
)


@dataclass(frozen=True)
class Finding:
    """One thing change capture needs: whether it holds, what was found, and the exact fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


# --- check --------------------------------------------------------------------------------------------


def findings(source: Source) -> list[Finding]:
    server, role, settings = source.server, source.role, source.settings
    major = server.version // 10000
    found = [
        Finding(
            "version",
            major >= MIN_VERSION,
            f"PostgreSQL {major}",
            "" if major >= MIN_VERSION else f"upgrade to PostgreSQL {MIN_VERSION} or later",
        ),
        Finding(
            "wal_level",
            server.wal_level == "logical",
            f"wal_level is {server.wal_level}",
            "" if server.wal_level == "logical" else parameter_fix(source, "wal_level", "logical"),
        ),
    ]
    slots_needed = server.slots_used + (0 if source.slot else 1)
    found.append(
        Finding(
            "max_replication_slots",
            slots_needed <= server.max_replication_slots,
            f"{server.slots_used} of {server.max_replication_slots} slots in use"
            + ("" if source.slot else ", this pipeline needs one more"),
            ""
            if slots_needed <= server.max_replication_slots
            else parameter_fix(source, "max_replication_slots", str(slots_needed + 2)),
        )
    )
    found.append(
        Finding(
            "max_wal_senders",
            server.senders_used < server.max_wal_senders,
            f"{server.senders_used} of {server.max_wal_senders} WAL senders in use, a run needs one",
            ""
            if server.senders_used < server.max_wal_senders
            else parameter_fix(source, "max_wal_senders", str(server.senders_used + 2)),
        )
    )
    may_replicate = role.superuser or role.replication
    how = "superuser" if role.superuser else "REPLICATION" if role.replication else "neither"
    if role.platform == "rds" and role.replication and not role.superuser:
        how = "rds_replication"
    found.append(
        Finding(
            "replication privilege",
            may_replicate,
            f"role {role.name}: {how} (a slot needs REPLICATION, rds_replication on RDS, or superuser)",
            "" if may_replicate else replication_fix(role),
        )
    )
    needed = publication_sql(source)
    if needed and not may_publish(source):
        not_owned = [name for name in source.publishable if not source.tables[name].owned]
        reasons = []
        if not_owned:
            owners = sorted({source.tables[name].owner for name in not_owned})
            reasons.append(f"it does not own {', '.join(not_owned)} (owner: {', '.join(owners)})")
        if source.publication is None and not role.may_create_in_database:
            reasons.append(f"it has no CREATE privilege on database {role.database}")
        if source.publication is not None and not source.publication.owned:
            reasons.append(f"it does not own publication {settings.publication_name}")
        found.append(
            Finding(
                "publication privilege",
                False,
                f"role {role.name} may not create or change the publication: {'; '.join(reasons)}",
                "a DBA (a superuser or the tables' owner) runs the publication's SQL below",
            )
        )
    if source.publication is None:
        found.append(
            Finding(
                "publication",
                False,
                f"publication {settings.publication_name} does not exist",
                "\n".join(needed) or "nothing to publish: no selected table has a primary key",
            )
        )
    else:
        problems = []
        if source.publication.all_tables:
            problems.append("it is FOR ALL TABLES (tables without a key too)")
        if source.missing_tables:
            problems.append(f"missing {', '.join(source.missing_tables)}")
        if source.extra_tables:
            extra = ", ".join(f"{s}.{t}" for s, t in source.extra_tables)
            problems.append(f"holds {extra}, which it should not")
        if not source.publication.publishes_every_change:
            problems.append("it does not publish every kind of change (insert, update, delete, truncate)")
        found.append(
            Finding(
                "publication",
                not problems,
                f"publication {settings.publication_name}: "
                + ("; ".join(problems) if problems else f"holds {', '.join(source.publishable)}"),
                "\n".join(needed),
            )
        )
    found.append(slot_finding(source))
    keep = server.max_slot_wal_keep_size_mb
    found.append(
        Finding(
            "max_slot_wal_keep_size",
            True,
            "unlimited (-1): a slot left behind can hold WAL until the disk fills; consider a bound"
            if keep < 0
            else f"{keep:,} MB: past it the server invalidates the slot and the next run loads everything"
            " again",
        )
    )
    return found


def slot_finding(source: Source) -> Finding:
    slot, name = source.slot, source.settings.slot_name
    if slot is None:
        return Finding("slot", True, f"slot {name} does not exist yet: setup creates it (or the first run)")
    problems = []
    if slot.slot_type != "logical" or slot.plugin != PLUGIN:
        problems.append(f"it is a {slot.slot_type} slot of plugin {slot.plugin}, not a logical {PLUGIN} slot")
    if slot.database != source.role.database:
        problems.append(f"it belongs to database {slot.database}, not {source.role.database}")
    if slot.lost:
        problems.append("it was invalidated (wal_status lost)")
    fix = "uv run python -m tools.postgres_cdc drop, then setup (the next run loads everything again)"
    if slot.database != source.role.database:
        fix = f"set slot_name in [sources.products] to another name: {name} belongs to another database"
    detail = f"slot {name}: " + ("; ".join(problems) if problems else slot.describe())
    return Finding("slot", not problems, detail, fix if problems else "")


def print_findings(found: list[Finding]) -> None:
    width = max(len(f.name) for f in found)
    for finding in found:
        print(f"  {'ok  ' if finding.ok else 'FAIL'}  {finding.name:<{width}}  {finding.detail}")
        for number, line in enumerate(finding.fix.splitlines()):
            print(f"        {'':<{width}}  {'fix: ' if number == 0 else '     '}{line}")


def print_left_out(source: Source) -> None:
    for name, reason in source.left_out.items():
        print(f"  left out of the publication: {source.schema}.{name}: {reason}")


def check(source: Source) -> int:
    mode = source.settings.change_capture
    print(f"change data capture on PostgreSQL {source.where} (change_capture = {mode})")
    found = findings(source)
    print_findings(found)
    print_left_out(source)
    ready = all(f.ok for f in found)
    print("ready" if ready else "not ready")
    return 0 if ready else 1


# --- setup and drop -------------------------------------------------------------------------------------


def setup(engine: sa.Engine, source: Source, print_only: bool) -> int:
    """Make the publication and the slot, in that order, as far as the role may; print the rest."""
    publication, slot = publication_sql(source), slot_sql(source)
    print_left_out(source)
    if print_only:
        statements = publication + slot
        header = "-- run as a superuser or the tables' owner, in this order:"
        print(header if statements else "-- nothing to do")
        print("\n".join(statements))
        return 0
    for_dba: list[str] = []
    if publication and may_publish(source):
        _run(engine, publication)
    else:
        for_dba += publication
    can_decode = source.server.wal_level == "logical"
    may_slot = source.role.superuser or source.role.replication
    if slot and not for_dba and can_decode and may_slot:
        _run(engine, slot)  # only once the publication exists: pgoutput needs it as of the slot's start
    else:
        for_dba += slot
    if not can_decode:
        print(f"wal_level is {source.server.wal_level}: {parameter_fix(source, 'wal_level', 'logical')}")
    if for_dba:
        print("a DBA (superuser or the tables' owner) must run, in this order:")
        print("\n".join(for_dba))
        return 1
    unusable = slot_finding(source)
    if not unusable.ok:  # another database's, invalidated, or of another plug-in: setup cannot mend it
        print(f"{unusable.detail}; fix: {unusable.fix}")
        return 1
    print(f"publication {source.settings.publication_name} and slot {source.settings.slot_name} are in place")
    return 0


def drop(engine: sa.Engine, source: Source, with_publication: bool) -> int:
    statements = []
    if source.slot is not None:
        if source.slot.database != source.role.database:
            print(
                f"slot {source.slot.name} belongs to database {source.slot.database}, not this pipeline's"
                f" {source.role.database}: left alone"
            )
            return 1
        if source.slot.active:
            print(f"slot {source.slot.name} is in use by a running load: wait for it to finish, then drop it")
            return 1
        statements.append(f"SELECT pg_drop_replication_slot({literal(source.slot.name)});")
    else:
        print(f"slot {source.settings.slot_name} does not exist")
    if with_publication and source.publication is not None:
        statements.append(f"DROP PUBLICATION {identifier(source.publication.name)};")
    if not statements:
        return 0
    try:
        _run(engine, statements)
    except sa.exc.DBAPIError as exc:
        print(f"cannot drop: {safe_error(engine, exc)}; a DBA runs:\n" + "\n".join(statements))
        return 1
    print(RESNAPSHOT_WARNING)
    return 0


def _run(engine: sa.Engine, statements: list[str]) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for statement in statements:
            connection.execute(sa.text(statement.replace(":", r"\:")))
            print(f"done: {statement}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.postgres_cdc", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="is PostgreSQL ready for change_capture = logical? (exit 1 if not)")
    setup_cmd = commands.add_parser("setup", help="create the publication and the slot, or print the SQL")
    setup_cmd.add_argument("--print-sql", action="store_true", help="only print the SQL, change nothing")
    drop_cmd = commands.add_parser("drop", help="drop the slot (the next run loads every table again)")
    drop_cmd.add_argument("--publication", action="store_true", help="drop the publication too")
    args = parser.parse_args(argv)
    vault_provider.register()
    engine: sa.Engine | None = None
    try:
        config = source_config()
        settings = capture_settings(config)
        engine = connect(config)
        source = read_source(engine, config, settings)
        if args.command == "check":
            return check(source)
        if args.command == "setup":
            return setup(engine, source, args.print_sql)
        return drop(engine, source, args.publication)
    except Exception as exc:
        print(f"postgres_cdc {args.command}: {safe_error(engine, exc)}", file=sys.stderr)
        return 2
    finally:
        if engine is not None:
            engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
