"""``python -m tools.postgres_cdc check|setup|drop`` and the slot's health in ``python -m pipelines
status``, on the real PostgreSQL of the ``postgres`` fixture (``wal_level = logical``).

Each test uses a slot and publication of its own and drops them (a slot left behind retains WAL and
blocks ``DROP DATABASE``); the unprivileged role is dropped too.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

import declarations
from declarations import Checks, ReplicationSlotCheck
from pipelines import products
from pipelines.__main__ import main as pipelines_main
from tests.fixtures.postgres import Postgres
from tests.fixtures.vault import Vault
from tests.fixtures.warehouse import Warehouse
from tools.postgres_cdc import main
from utils.checks import replication_slot
from utils.pg_replication import SlotHealth

PASSWORD = "s3cret-Pw-9f1"  # pragma: allowlist secret

SCHEMA_SQL = """
create table public.products (id bigint primary key, name text not null, updated_at timestamptz);
create table public.colours (code text, label text);
create table public.prices (sku text not null unique, amount numeric(10, 2));
insert into public.products select g, 'product ' || g, now() from generate_series(1, 20) g;
insert into public.colours values ('r', 'red');
"""


@dataclass
class Cdc:
    """A test database with a keyed table (``products``), a keyless one (``colours``) and one keyed
    only by a setting (``prices``), wired in as the products source with this test's slot."""

    uri: str
    slot: str
    publication: str

    def execute(self, sql: str, uri: str | None = None) -> None:
        engine = sa.create_engine(uri or self.uri, isolation_level="AUTOCOMMIT")
        with engine.connect() as con:
            for statement in filter(str.strip, sql.split(";")):
                con.execute(sa.text(statement))
        engine.dispose()

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        engine = sa.create_engine(self.uri)
        with engine.connect() as con:
            found = [
                tuple(row) for row in con.execute(sa.text(sql), {"slot": self.slot, "pub": self.publication})
            ]
        engine.dispose()
        return found

    def slot_row(self) -> list[tuple[object, ...]]:
        return self.rows("select plugin, database from pg_replication_slots where slot_name = :slot")

    def published(self) -> set[str]:
        return {
            str(r[0]) for r in self.rows("select tablename from pg_publication_tables where pubname = :pub")
        }

    def publication_exists(self) -> bool:
        return bool(self.rows("select 1 from pg_publication where pubname = :pub"))


@pytest.fixture
def cdc(postgres: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cdc]:
    tag = uuid.uuid4().hex[:8]
    found = Cdc(postgres, slot=f"dp_test_{tag}", publication=f"dp_test_{tag}")
    found.execute(SCHEMA_SQL)
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS", postgres)
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["*", {"name": "prices", "primary_key": ["sku"]}]')
    monkeypatch.setenv("SOURCES__PRODUCTS__SLOT_NAME", found.slot)
    monkeypatch.setenv("SOURCES__PRODUCTS__PUBLICATION_NAME", found.publication)
    monkeypatch.setenv("SOURCES__PRODUCTS__CHANGE_CAPTURE", "logical")
    yield found
    deadline = time.monotonic() + 10  # a streaming connection just closed lets go of the slot shortly
    while found.rows("select 1 from pg_replication_slots where slot_name = :slot and active"):
        assert time.monotonic() < deadline, f"slot {found.slot} still in use"
        time.sleep(0.1)
    found.execute(
        "select pg_drop_replication_slot(slot_name) from pg_replication_slots"
        f" where slot_name = '{found.slot}'"
    )


@pytest.fixture
def reader(cdc: Cdc, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A role with SELECT on the tables, no REPLICATION, owner of nothing; the source connects as it."""
    role = f"reader_{uuid.uuid4().hex[:8]}"
    cdc.execute(
        f"create role {role} login password '{PASSWORD}';"
        f" grant select on all tables in schema public to {role}"
    )
    url = sa.make_url(cdc.uri).set(username=role, password=PASSWORD)
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS", url.render_as_string(hide_password=False))
    yield role
    cdc.execute(f"drop owned by {role}; drop role {role}")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_check_passes_once_setup_has_run_and_names_what_is_missing_before(
    cdc: Cdc, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "check")
    assert code == 1, out
    assert "FAIL  publication" in out and f"publication {cdc.publication} does not exist" in out
    assert f'CREATE PUBLICATION "{cdc.publication}" FOR TABLE "public"."products"' in out
    assert out.rstrip().endswith("not ready")

    assert run(capsys, "setup")[0] == 0
    code, out = run(capsys, "check")
    assert code == 0, out
    assert out.rstrip().endswith("ready") and "FAIL" not in out
    assert f"slot {cdc.slot}: " in out and "of WAL retained" in out
    assert "ok    replication privilege" in out and "superuser" in out


def test_check_as_a_role_without_replication_that_owns_nothing_reports_both_with_fixes(
    cdc: Cdc, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "check")
    assert code == 1
    assert "FAIL  replication privilege" in out
    assert f'fix: ALTER ROLE "{reader}" WITH REPLICATION;' in out
    assert "FAIL  publication privilege" in out and "it does not own products" in out
    assert "no CREATE privilege on database" in out
    assert f'CREATE PUBLICATION "{cdc.publication}" FOR TABLE "public"."products"' in out
    assert out.rstrip().endswith("not ready")
    assert PASSWORD not in out


def test_on_rds_the_fix_is_the_rds_replication_role(
    cdc: Cdc, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cdc.execute("create role rds_replication")
    try:
        code, out = run(capsys, "check")
        assert code == 1
        assert f'fix: GRANT rds_replication TO "{reader}";' in out
        cdc.execute(f"grant rds_replication to {reader}")
        assert "ok    replication privilege" in run(capsys, "check")[1]
    finally:
        cdc.execute("drop role rds_replication")


def test_setup_without_privileges_prints_the_sql_in_order_and_creates_nothing(
    cdc: Cdc, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "setup")
    assert code == 1
    create = out.index(f'CREATE PUBLICATION "{cdc.publication}" FOR TABLE "public"."products"')
    slot = out.index(f"SELECT pg_create_logical_replication_slot('{cdc.slot}', 'pgoutput');")
    assert create < slot  # pgoutput needs the publication as of the slot's start
    assert not cdc.publication_exists() and cdc.slot_row() == []
    assert PASSWORD not in out


def test_setup_as_superuser_publishes_keyed_tables_only_and_is_idempotent(
    cdc: Cdc, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "setup", "--print-sql")
    assert code == 0 and "CREATE PUBLICATION" in out
    assert not cdc.publication_exists() and cdc.slot_row() == []  # --print-sql changes nothing

    code, out = run(capsys, "setup")
    assert code == 0, out
    assert cdc.published() == {"products"}
    assert cdc.slot_row() == [("pgoutput", sa.make_url(cdc.uri).database)]
    assert "left out of the publication: public.colours: no primary key" in out
    assert "left out of the publication: public.prices: its key (sku) is a setting" in out
    assert "REPLICA IDENTITY FULL" in out
    cdc.execute("update public.colours set label = 'rouge'")  # the application's UPDATE still works

    code, out = run(capsys, "setup")
    assert code == 0 and "done:" not in out and "are in place" in out
    assert cdc.published() == {"products"}

    # a keyed table created later joins the publication; one that loses its key leaves it
    cdc.execute(
        "create table public.sizes (id int primary key);"
        " alter table public.products drop constraint products_pkey"
    )
    code, out = run(capsys, "check")
    assert code == 1 and "missing sizes" in out and "holds public.products, which it should not" in out
    assert run(capsys, "setup")[0] == 0
    assert cdc.published() == {"sizes"}
    assert run(capsys, "check")[0] == 0


def test_drop_removes_the_slot_and_with_publication_the_publication(
    cdc: Cdc, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "setup")[0] == 0
    code, out = run(capsys, "drop")
    assert code == 0
    assert cdc.slot_row() == [] and cdc.publication_exists()
    assert "loads every published table again" in out
    code, out = run(capsys, "drop", "--publication")
    assert code == 0 and f"slot {cdc.slot} does not exist" in out
    assert not cdc.publication_exists()


# --- status ------------------------------------------------------------------------------------------


def bound(monkeypatch: pytest.MonkeyPatch, max_retained_mb: float) -> None:
    """The products declaration with this ``checks.replication_slot.max_retained_mb``."""
    declared = declarations.declaration("products")
    checks = Checks(replication_slot=ReplicationSlotCheck(max_retained_mb=max_retained_mb))
    changed = declared.model_copy(update={"checks": checks})
    monkeypatch.setattr("sources.products.slot.declaration", lambda name: changed)


def slot_check(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert pipelines_main(["status", "products", "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    (found,) = [c for c in status["checks"] if c["check"] == "replication_slot"]
    return dict(found)


def test_status_shows_the_slots_retained_wal_and_warns_past_the_bound(
    cdc: Cdc, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "setup")[0] == 0
    cdc.execute("insert into public.products select g, repeat('x', 1000) from generate_series(100, 4100) g")
    bound(monkeypatch, 1024)
    found = slot_check(capsys)
    figures = found["figures"]
    assert isinstance(figures, dict)
    assert found["state"] == "ok" and figures["retained_bytes"] > 4 * 2**20 and figures["active"] is False
    assert figures["lag_bytes"] > 4 * 2**20

    bound(monkeypatch, 2)
    found = slot_check(capsys)
    assert found["state"] == "warn" and "past the bound of 2.0 MB" in str(found["detail"])
    assert pipelines_main(["status", "products"]) == 0
    out = capsys.readouterr().out
    assert f"products replication_slot warn: slot {cdc.slot}: " in out  # below the table

    monkeypatch.setenv("SOURCES__PRODUCTS__CHANGE_CAPTURE", "cursor")
    assert pipelines_main(["status", "products", "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert [c for c in status["checks"] if c["check"] == "replication_slot"] == []


def test_status_says_when_the_slot_is_missing(cdc: Cdc, capsys: pytest.CaptureFixture[str]) -> None:
    found = slot_check(capsys)
    assert found["state"] == "warn" and f"slot {cdc.slot} does not exist" in str(found["detail"])


def test_status_with_postgresql_unreachable_says_so_without_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(
        "SOURCES__PRODUCTS__CREDENTIALS", f"postgresql://loader:{PASSWORD}@127.0.0.1:{port}/shop"
    )
    monkeypatch.setenv("SOURCES__PRODUCTS__CHANGE_CAPTURE", "logical")
    assert pipelines_main(["status", "products"]) == 0
    out = capsys.readouterr().out
    assert (
        "products replication_slot warn: cannot read the replication slot: products: could not connect" in out
    )
    assert f'database "shop" on 127.0.0.1:{port} as loader' in out
    assert PASSWORD not in out


# --- the judgement alone -------------------------------------------------------------------------------


def health(**changes: object) -> SlotHealth:
    found = SlotHealth("s", "pgoutput", "logical", "shop", False, "reserved", 3 * 2**20, 2**20)
    return dataclasses.replace(found, **changes)  # type: ignore[arg-type]


def test_an_invalidated_slot_or_one_of_another_plugin_fails_and_says_how_to_rebuild_it() -> None:
    settings = ReplicationSlotCheck(max_retained_mb=1024)
    lost = replication_slot(health(wal_status="lost", retained_bytes=None), "s", settings)
    assert lost.state == "fail" and "invalidated" in lost.detail
    assert "uv run python -m tools.postgres_cdc drop" in lost.detail
    other = replication_slot(health(plugin="wal2json"), "s", settings)
    assert other.state == "fail" and "plugin wal2json" in other.detail
    assert replication_slot(health(), "s", settings).state == "ok"
    strict = ReplicationSlotCheck(max_retained_mb=2, severity="fail")
    assert replication_slot(health(), "s", strict).state == "fail"


def test_a_partitioned_table_is_published_under_its_own_name(
    cdc: Cdc, capsys: pytest.CaptureFixture[str]
) -> None:
    cdc.execute(
        "create table public.events (id int, day date, primary key (id, day)) partition by range (day);"
        " create table public.events_2026 partition of public.events"
        " for values from ('2026-01-01') to ('2027-01-01')"
    )
    code, out = run(capsys, "setup")
    assert code == 0, out
    assert cdc.published() == {"products", "events"}  # not events_2026: changes arrive as events'
    assert run(capsys, "check")[0] == 0


def test_the_sql_printed_for_a_dba_makes_the_role_ready_and_its_runs_confirm_the_slot(
    cdc: Cdc, reader: str, capsys: pytest.CaptureFixture[str], warehouse: Warehouse
) -> None:
    code, out = run(capsys, "setup", "--print-sql")
    assert code == 0
    statements = [line for line in out.splitlines() if line.startswith(("CREATE", "SELECT"))]
    code, out = run(capsys, "check")
    [fix] = [line.split("fix: ", 1)[1] for line in out.splitlines() if "WITH REPLICATION" in line]
    cdc.execute(";".join([*statements, fix]))  # the DBA, as a superuser

    code, out = run(capsys, "check")
    assert code == 0, out
    assert products.run().status == "succeeded"  # as the role, through the slot the DBA made
    assert warehouse.query("select count(*) from products.products") == [(20,)]
    cdc.execute(
        "delete from public.products where id = 1; update public.products set name = 'n' where id = 2"
    )
    assert products.run().status == "succeeded"
    assert warehouse.query("select count(*), min(id) from products.products") == [(19, 2)]
    [(lag,)] = cdc.rows(
        "select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) from pg_replication_slots"
        " where slot_name = :slot"
    )
    assert int(str(lag)) < 2**20  # confirmed by the role's run


def test_a_role_that_may_make_slots_but_not_the_publication_makes_neither(
    cdc: Cdc, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cdc.execute(f"alter role {reader} with replication")
    code, out = run(capsys, "setup")
    assert code == 1
    assert cdc.slot_row() == []  # a slot older than its publication could not decode what came between
    assert "CREATE PUBLICATION" in out and "pg_create_logical_replication_slot" in out


def test_drop_refuses_while_a_run_streams_from_the_slot(cdc: Cdc, capsys: pytest.CaptureFixture[str]) -> None:
    import psycopg2
    import psycopg2.extras

    assert run(capsys, "setup")[0] == 0
    url = sa.make_url(cdc.uri)
    streaming = psycopg2.connect(
        dbname=url.database,
        user=url.username,
        host=url.query["host"],
        connection_factory=psycopg2.extras.LogicalReplicationConnection,
    )
    try:
        cursor = streaming.cursor()
        cursor.start_replication(
            slot_name=cdc.slot,
            decode=False,
            options={"proto_version": "1", "publication_names": cdc.publication},
        )
        code, out = run(capsys, "drop")
        assert code == 1 and "in use by a running load" in out
        assert cdc.slot_row() != []
    finally:
        streaming.close()


def test_credentials_come_from_the_vault_as_for_a_run(
    cdc: Cdc, vault: Vault, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCES__PRODUCTS__CREDENTIALS")
    vault.put("dlt/sources/products", {"credentials": cdc.uri})
    vault.reload()
    code, out = run(capsys, "setup")
    assert code == 0, out
    assert cdc.published() == {"products"}


def test_a_partitioned_tables_changes_arrive_through_the_publication_setup_made(
    cdc: Cdc, capsys: pytest.CaptureFixture[str], warehouse: Warehouse
) -> None:
    cdc.execute(
        "create table public.events (id int, day date, note text, primary key (id, day))"
        " partition by range (day);"
        " create table public.events_2026 partition of public.events"
        " for values from ('2026-01-01') to ('2027-01-01');"
        " insert into public.events values (1, '2026-03-01', 'a'), (2, '2026-03-02', 'b')"
    )
    assert run(capsys, "setup")[0] == 0
    assert products.run().status == "succeeded"
    cdc.execute(
        "update public.events set note = 'changed' where id = 1; delete from public.events where id = 2;"
        " insert into public.events values (3, '2026-04-01', 'c')"
    )
    report = products.run()
    assert report.status == "succeeded"
    assert warehouse.query("select id, note from products.events order by id") == [(1, "changed"), (3, "c")]
    assert "change capture: events: 3 changed key(s) re-read, 1 deleted in the source removed" in report.notes


@pytest.mark.parametrize("publish", ["insert", "insert, update, delete"])
def test_a_publication_that_leaves_out_a_kind_of_change_is_mended(
    cdc: Cdc, capsys: pytest.CaptureFixture[str], publish: str
) -> None:
    cdc.execute(
        f"create publication {cdc.publication} for table public.products with (publish = '{publish}')"
    )
    code, out = run(capsys, "check")
    assert code == 1 and "it does not publish every kind of change" in out
    assert run(capsys, "setup")[0] == 0
    every = "select pubinsert and pubupdate and pubdelete and pubtruncate from pg_publication"
    every += " where pubname = :pub"
    assert cdc.rows(every) == [(True,)]
    assert run(capsys, "check")[0] == 0


def test_a_slot_of_that_name_in_another_database_is_named_and_left_alone(
    cdc: Cdc, postgres_server: Postgres, capsys: pytest.CaptureFixture[str]
) -> None:
    other = postgres_server.database()
    cdc.execute(f"select pg_create_logical_replication_slot('{cdc.slot}', 'pgoutput')", uri=other)
    try:
        code, out = run(capsys, "check")
        assert code == 1 and f"it belongs to database {sa.make_url(other).database}" in out
        assert "set slot_name in [sources.products] to another name" in out
        code, out = run(capsys, "setup")
        assert code == 1 and "belongs to database" in out
        code, out = run(capsys, "drop")
        assert code == 1 and "left alone" in out
        found = slot_check(capsys)
        assert found["state"] == "fail" and "belongs to database" in str(found["detail"])
        assert cdc.slot_row() == [("pgoutput", sa.make_url(other).database)]
    finally:
        cdc.execute(f"select pg_drop_replication_slot('{cdc.slot}')", uri=other)
