"""Snowflake preflight: can the configured credentials do everything a dlt load does? Run it before the
first deploy (and after any change to grants or keys). Owner: data platform team (#data-platform).

It resolves ``[destination.snowflake.credentials]`` exactly as a load does (dlt's config chain:
environment, ``.dlt/secrets.toml``, the vault when ``PROVIDERS__ENABLE_AWS_SECRETS=true``), connects,
shows the user, role, warehouse and database the session really got, then does in a scratch schema what
dlt does in a dataset: create the dataset and ``<DATASET>_STAGING`` schemas, a table, ``PUT`` a parquet
file to the table's stage, ``COPY`` it in, ``REMOVE`` it, merge and replace from the staging schema, and
truncate staging. It drops the scratch schemas afterwards. Each failed step is printed with the
statement that fixes it (from ``snowflake/setup.sql``); it ends with ``ready`` (exit code 0) or
``not ready`` (exit code 1). No secret is ever printed.

    uv run python -m tools.secrets preflight
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from dlt.common.configuration.exceptions import ConfigurationException
from dlt.common.configuration.resolve import resolve_configuration
from dlt.destinations.impl.snowflake.configuration import SnowflakeCredentials

CREDENTIALS_SECTIONS = ("destination", "snowflake")
SCRATCH_PREFIX = "DLT_PREFLIGHT_"
SECRET_FIELDS = ("password", "private_key", "private_key_passphrase", "token")


@dataclass(frozen=True)
class Step:
    """One thing a load needs: what was tried, whether it worked, and the statement that fixes it."""

    name: str
    ok: bool
    detail: str = ""
    fix: str = ""


class Redactor:
    """Removes every configured secret value from text before it is printed."""

    def __init__(self, credentials: SnowflakeCredentials) -> None:
        values = [getattr(credentials, name, None) for name in SECRET_FIELDS]
        self._values = [str(v) for v in values if v and len(str(v)) >= 4]

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text


def resolve_credentials() -> SnowflakeCredentials:
    """``[destination.snowflake.credentials]`` through dlt's providers, as a load resolves them."""
    import utils  # noqa: F401 - plugs the vault into dlt's config chain, as for every pipeline

    return resolve_configuration(SnowflakeCredentials(), sections=CREDENTIALS_SECTIONS)


def _error(exc: BaseException) -> str:
    """The first lines of a Snowflake error: its code and message, without the query id noise."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines[:3])


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Session:
    """Runs preflight statements on one connection and records each as a :class:`Step`."""

    def __init__(self, connection: Any, redact: Redactor) -> None:
        self.connection = connection
        self.redact = redact
        self.steps: list[Step] = []

    def run(self, name: str, sql: str, fix: str) -> list[tuple[Any, ...]] | None:
        """Execute ``sql``; ``None`` when it failed (recorded with ``fix``)."""
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(sql)
                rows = list(cursor.fetchall()) if cursor.description else []
        except Exception as exc:  # any database error is a finding, never a crash
            self.steps.append(Step(name, False, self.redact(_error(exc)), fix))
            return None
        self.steps.append(Step(name, True))
        return rows

    def require(self, name: str, ok: bool, detail: str, fix: str) -> bool:
        self.steps.append(Step(name, ok, "" if ok else detail, "" if ok else fix))
        return ok


def _session_checks(session: _Session, credentials: SnowflakeCredentials) -> dict[str, str | None]:
    """What the session really got: Snowflake leaves a warehouse or database it may not use NULL."""
    user, role = credentials.username, credentials.role or "<loader role>"
    rows = session.run(
        "read the session's user, role, warehouse and database",
        "SELECT CURRENT_USER(), CURRENT_ROLE(), CURRENT_WAREHOUSE(), CURRENT_DATABASE()",
        "check the account identifier (host) and that the user exists and is not disabled",
    )
    if rows is None:
        return {}
    current = dict(zip(("user", "role", "warehouse", "database"), rows[0], strict=True))
    if credentials.role:
        session.require(
            f"session role is {credentials.role}",
            str(current["role"] or "").upper() == credentials.role.upper(),
            f"the session runs as role {current['role']}",
            f"GRANT ROLE {credentials.role} TO USER {user};",
        )
    else:
        session.require(
            "session has a role",
            bool(current["role"]) and str(current["role"]).upper() != "PUBLIC",
            f"no role configured and the user's default role is {current['role']}",
            f"ALTER USER {user} SET DEFAULT_ROLE = {role};  -- or set role in the credentials",
        )
    warehouse = credentials.warehouse or "LOADING"
    session.require(
        "session has a warehouse",
        bool(current["warehouse"]),
        f"warehouse {credentials.warehouse or '(none configured, no DEFAULT_WAREHOUSE)'} is not usable: "
        "it does not exist or the role may not use it",
        f"GRANT USAGE ON WAREHOUSE {warehouse} TO ROLE {role};",
    )
    session.require(
        "session has a database",
        bool(current["database"]),
        f"database {credentials.database} does not exist or the role may not use it",
        f"GRANT USAGE ON DATABASE {credentials.database} TO ROLE {role};",
    )
    return current


def _load_checks(session: _Session, database: str, warehouse: str, role: str, work: Path) -> None:
    """Do in a scratch dataset what dlt does in a real one; always drop the scratch schemas."""
    name = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:8].upper()}"
    schema = f"{_ident(database)}.{_ident(name)}"
    staging = f"{_ident(database)}.{_ident(name + '_STAGING')}"
    table, staged = f"{schema}.{_ident('PREFLIGHT')}", f"{staging}.{_ident('PREFLIGHT')}"
    stage = f"@{schema}.{_ident('%PREFLIGHT')}"
    owner_fix = (
        f"the role owns what it creates: make sure {role} creates the dataset schemas itself "
        f"(GRANT CREATE SCHEMA ON DATABASE {database} TO ROLE {role};) and no schema-level policy blocks it"
    )
    parquet = work / "preflight.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1, 2], "name": ["a", "b"]}), parquet)
    try:
        steps: list[tuple[str, str, str]] = [
            (f"create a dataset schema ({database}.{name})", f"CREATE SCHEMA {schema}",
             f"GRANT CREATE SCHEMA ON DATABASE {database} TO ROLE {role};"),
            (f"create its staging schema ({name}_STAGING, merge and replace)", f"CREATE SCHEMA {staging}",
             f"GRANT CREATE SCHEMA ON DATABASE {database} TO ROLE {role};"),
            ("create a table", f"CREATE TABLE {table} (ID INTEGER, NAME VARCHAR)", owner_fix),
            ("PUT a parquet file to the table's stage",
             f"PUT 'file://{parquet.as_posix()}' {stage} OVERWRITE = TRUE AUTO_COMPRESS = FALSE",
             f"only the table's owner may use its stage: {owner_fix}"),
            ("COPY it into the table (needs the warehouse)",
             f"COPY INTO {table} FROM {stage} FILE_FORMAT = (TYPE = PARQUET)"
             " MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE",
             f"GRANT USAGE ON WAREHOUSE {warehouse} TO ROLE {role};  -- and AUTO_RESUME = TRUE on it"),
            ("REMOVE the staged file", f"REMOVE {stage}", owner_fix),
            ("create a staging table", f"CREATE TABLE {staged} AS SELECT * FROM {table}", owner_fix),
            ("merge from staging (MERGE)",
             f"MERGE INTO {table} AS d USING {staged} AS s ON d.ID = s.ID"
             " WHEN MATCHED THEN UPDATE SET NAME = s.NAME"
             " WHEN NOT MATCHED THEN INSERT (ID, NAME) VALUES (s.ID, s.NAME)", owner_fix),
            ("replace from staging (DELETE)", f"DELETE FROM {table}", owner_fix),
            ("replace from staging (INSERT ... SELECT)",
             f"INSERT INTO {table} SELECT ID, NAME FROM {staged}", owner_fix),
            ("truncate the staging table", f"TRUNCATE TABLE {staged}", owner_fix),
        ]  # fmt: skip
        for step_name, sql, fix in steps:
            if session.run(step_name, sql, fix) is None:
                break  # every later step depends on this one
        else:
            rows = session.run("read the loaded rows back", f"SELECT COUNT(*) FROM {table}", owner_fix)
            if rows is not None:
                session.require("the loaded rows are all there", rows[0][0] == 2, f"{rows[0][0]} rows", "")
    finally:
        for scratch in (staging, schema):
            try:
                with session.connection.cursor() as cursor:
                    cursor.execute(f"DROP SCHEMA IF EXISTS {scratch} CASCADE")
            except Exception as exc:  # reported, not fatal: the grants were what we came for
                print(f"  warning: could not drop {scratch}: {session.redact(_error(exc))}", file=sys.stderr)


def preflight(credentials: SnowflakeCredentials | None = None, out: TextIO | None = None) -> int:
    """Check the configured Snowflake credentials can load; print the report; 0 when ready, else 1."""
    out = out or sys.stdout

    def say(line: str = "") -> None:
        print(line, file=out)

    try:
        credentials = credentials or resolve_credentials()
    except ConfigurationException as exc:  # dlt names the missing keys and where it looked, no values
        say(f"Snowflake credentials are not configured: {exc}")
        say("not ready")
        return 1
    redact = Redactor(credentials)
    key_pair = credentials.private_key or credentials.private_key_path
    auth = "password" if credentials.password else "key pair" if key_pair else "other"
    default = "(user default)"
    say(
        f"Snowflake preflight: account {credentials.host}, configured user {credentials.username}, role "
        f"{credentials.role or default}, warehouse {credentials.warehouse or default}, database "
        f"{credentials.database}, {auth} authentication"
    )
    import snowflake.connector

    try:
        connection = snowflake.connector.connect(**{**credentials.to_connector_params(), "autocommit": True})
    except Exception as exc:  # a wrong key, passphrase, account or user: say which, never the value
        say(f"  FAIL  connect: {redact(_error(exc))}")
        say("        fix: check host (account identifier), username and the key pair: the public key on the")
        say(f"        user must match the private key (DESC USER {credentials.username}: RSA_PUBLIC_KEY_FP)")
        say("not ready")
        return 1
    session = _Session(connection, redact)
    try:
        current = _session_checks(session, credentials)
        if current:
            for label in ("user", "role", "warehouse", "database"):
                say(f"  {label:<10} {current[label] if current[label] is not None else '(none)'}")
        role = credentials.role or str(current.get("role") or "<loader role>")
        if current and all(step.ok for step in session.steps):
            with tempfile.TemporaryDirectory(prefix="dlt-preflight-") as work:
                _load_checks(session, str(current["database"]), str(current["warehouse"]), role, Path(work))
    finally:
        connection.close()
    for step in session.steps:
        say(f"  {'ok  ' if step.ok else 'FAIL'}  {step.name}" + (f": {step.detail}" if step.detail else ""))
        if step.fix:
            say(f"        fix: {step.fix}")
    failed = [step for step in session.steps if not step.ok]
    if failed:
        say(f"not ready: {len(failed)} check(s) failed; snowflake/setup.sql grants all of the above")
        return 1
    say("ready")
    return 0
