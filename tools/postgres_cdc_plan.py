"""What the products source's database holds for change capture, and what it should hold.

Read once per command of ``tools/postgres_cdc.py`` (:func:`read_source`): the tables discovery selects
(as a run selects them), which of them may be published and why the others may not, the server's
settings, the role, the publication and the slot; then the SQL that makes the publication and the
slot what they should be, and the fix for each server parameter on this kind of server (self-hosted,
RDS and Aurora, Cloud SQL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from sources.products.catalogue import DEFAULT_CURSORS, Defaults, LoadPlan, as_names, discover
from sources.products.errors import describe
from sources.products.slot import CaptureSettings
from utils.pg_replication import (
    PLUGIN,
    PUBLISHABLE_KINDS,
    Publication,
    RoleFacts,
    ServerSettings,
    SlotHealth,
    TableFacts,
    identifier,
    literal,
    qualified,
    read_publication,
    read_role,
    read_settings,
    read_slot,
    read_tables,
)


@dataclass
class Source:
    """Everything the commands decide on, read once."""

    settings: CaptureSettings
    schema: str
    where: str
    server: ServerSettings
    role: RoleFacts
    tables: dict[str, TableFacts]
    publishable: list[str]
    left_out: dict[str, str]
    publication: Publication | None
    slot: SlotHealth | None
    plans: list[LoadPlan] = field(default_factory=list)

    @property
    def missing_tables(self) -> list[str]:
        held = self.publication.tables_in(self.schema) if self.publication else set()
        return [name for name in self.publishable if name not in held]

    @property
    def extra_tables(self) -> list[tuple[str, str]]:
        """Tables the publication holds that it should not (left out, or no longer selected)."""
        if self.publication is None:
            return []
        wanted = {(self.schema, name) for name in self.publishable}
        return sorted(self.publication.tables - wanted)


def read_source(engine: sa.Engine, config: Any, settings: CaptureSettings) -> Source:
    defaults = Defaults(
        primary_key=as_names(config.primary_key),
        cursors=DEFAULT_CURSORS if config.cursor is None else as_names(config.cursor),
        soft_delete_column=config.soft_delete_column or None,
    )
    exclude = as_names(config.exclude)
    views = bool(config.views)
    _, plans = discover(engine, config.schema, config.tables, defaults, exclude=exclude, views=views)
    with engine.connect() as connection:
        tables = read_tables(connection, config.schema, [plan.name for plan in plans])
        publishable, left_out = [], {}
        for plan in plans:
            reason = leave_out_reason(plan, tables[plan.name], config.schema)
            if reason:
                left_out[plan.name] = reason
            else:
                publishable.append(plan.name)
        return Source(
            settings=settings,
            schema=config.schema,
            where=describe(engine.url),
            server=read_settings(connection),
            role=read_role(connection),
            tables=tables,
            publishable=publishable,
            left_out=left_out,
            publication=read_publication(connection, settings.publication_name),
            slot=read_slot(connection, settings.slot_name),
            plans=plans,
        )


def leave_out_reason(plan: LoadPlan, table: TableFacts, schema: str) -> str:
    """Why ``plan``'s table must not be published (empty: it may be)."""
    if not plan.primary_key:
        return (
            "no primary key: publishing it would make the application's UPDATE and DELETE on it fail;"
            " it stays on a full replace each run"
        )
    if table.kind not in PUBLISHABLE_KINDS:
        return f"a {plan.kind} cannot be published; it is read as without change capture"
    if not table.identifies_rows:
        return (
            f"its key ({', '.join(plan.primary_key)}) is a setting, not a primary-key constraint, and its"
            " replica identity names no columns, so publishing it would make the application's UPDATE and"
            f" DELETE on it fail; to capture it, a DBA runs `ALTER TABLE {qualified(schema, [plan.name])}"
            " REPLICA IDENTITY FULL;` (or USING INDEX a unique index on the key), then setup again"
        )
    return ""


# --- the fixes, per kind of server ------------------------------------------------------------------


def parameter_fix(source: Source, parameter: str, value: str) -> str:
    """How to set a server parameter that needs a restart, on this kind of server."""
    if source.role.platform == "rds":
        name = "rds.logical_replication" if parameter == "wal_level" else parameter
        value = "1" if parameter == "wal_level" else value
        return (
            f"set {name} = {value} in the DB parameter group of the instance (Aurora: the DB cluster"
            " parameter group), then reboot it (Aurora: the writer instance)"
        )
    if source.role.platform == "cloudsql":
        flag = "cloudsql.logical_decoding=on" if parameter == "wal_level" else f"{parameter}={value}"
        return (
            f"set the database flag {flag} (`gcloud sql instances patch INSTANCE --database-flags=...`"
            " replaces every flag: list the ones already set too); the instance restarts"
        )
    return f"ALTER SYSTEM SET {parameter} = {value}; then restart PostgreSQL (a reload is not enough)"


def replication_fix(role: RoleFacts) -> str:
    if role.platform == "rds":
        return f"GRANT rds_replication TO {identifier(role.name)};"
    return f"ALTER ROLE {identifier(role.name)} WITH REPLICATION;"


def publication_sql(source: Source) -> list[str]:
    """The statements that make the publication hold exactly the publishable tables."""
    name = identifier(source.settings.publication_name)
    if source.publication is None:
        if not source.publishable:
            return []
        tables = qualified(source.schema, source.publishable)
        return [f"CREATE PUBLICATION {name} FOR TABLE {tables} WITH (publish_via_partition_root = true);"]
    statements = []
    if source.publication.all_tables:
        tables = qualified(source.schema, source.publishable)
        return [
            f"DROP PUBLICATION {name};",
            f"CREATE PUBLICATION {name} FOR TABLE {tables} WITH (publish_via_partition_root = true);",
        ]
    if source.extra_tables:
        extra = ", ".join(f"{identifier(s)}.{identifier(t)}" for s, t in source.extra_tables)
        statements.append(f"ALTER PUBLICATION {name} DROP TABLE {extra};")
    if source.missing_tables:
        tables = qualified(source.schema, source.missing_tables)
        statements.append(f"ALTER PUBLICATION {name} ADD TABLE {tables};")
    if not source.publication.publishes_every_change:
        statements.append(f"ALTER PUBLICATION {name} SET (publish = 'insert, update, delete, truncate');")
    return statements


def slot_sql(source: Source) -> list[str]:
    if source.slot is not None:
        return []
    return [f"SELECT pg_create_logical_replication_slot({literal(source.settings.slot_name)}, '{PLUGIN}');"]


def may_publish(source: Source) -> bool:
    """Whether the role may run :func:`publication_sql` (owner of every table it names, and of the
    publication or allowed to create one)."""
    if source.role.superuser:
        return True
    named = source.missing_tables if source.publication is not None else source.publishable
    owns_tables = all(source.tables[name].owned for name in named)
    if source.publication is None:
        return source.role.may_create_in_database and owns_tables
    return source.publication.owned and owns_tables and not source.publication.all_tables
