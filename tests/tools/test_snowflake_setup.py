"""snowflake/setup.sql: it parses as Snowflake SQL, grants the loader exactly what dlt uses, and names the
same user, role, warehouse and database as the docs and the secrets example.

How each statement is checked: sqlglot's Snowflake dialect (the version dlt installs) parses ``SET``,
``USE ROLE``, ``CREATE WAREHOUSE``, ``CREATE DATABASE`` and ``GRANT <privilege> ON <object>`` into
syntax trees. It has no grammar for ``CREATE ROLE``, ``CREATE USER``, ``ALTER USER``, ``GRANT ROLE`` or
grants ``ON ALL/FUTURE ... IN DATABASE`` and keeps them as opaque commands; those are matched against
the syntax in Snowflake's SQL reference, written out below. fakesnow runs none of these statements
(no users, roles, warehouses or grants), so the emulator cannot check them.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "snowflake" / "setup.sql"

VAR = r"IDENTIFIER\(\$\w+\)"
COMMAND_SYNTAX = {  # Snowflake's SQL reference, for what sqlglot keeps as an opaque command
    "CREATE ROLE": rf"CREATE ROLE IF NOT EXISTS {VAR}( COMMENT = '[^']*')?",
    "CREATE USER": rf"CREATE USER IF NOT EXISTS {VAR} TYPE = SERVICE RSA_PUBLIC_KEY = '[^']+'"
    r"( COMMENT = '[^']*')?",
    "ALTER USER": rf"ALTER USER {VAR} SET( (DEFAULT_ROLE|DEFAULT_WAREHOUSE|DEFAULT_NAMESPACE) = \$\w+)+"
    r" DEFAULT_SECONDARY_ROLES = \(\)",
    "GRANT ROLE": rf"GRANT ROLE {VAR} TO (ROLE SYSADMIN|USER {VAR})",
    "GRANT ON ALL/FUTURE": rf"GRANT (USAGE|SELECT) ON (ALL|FUTURE) (SCHEMAS|TABLES) IN DATABASE {VAR}"
    rf" TO ROLE {VAR}",
}


def statements(text: str | None = None) -> list[str]:
    """The statements of setup.sql, comments removed, whitespace collapsed (quotes respected)."""
    text = SETUP.read_text() if text is None else text
    found: list[str] = []
    current: list[str] = []
    i, quoted = 0, False
    while i < len(text):
        char = text[i]
        if char == "'":
            quoted = not quoted  # '' inside a string toggles twice: still right
        elif not quoted and text.startswith("--", i):
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
            continue
        elif not quoted and char == ";":
            found.append("".join(current))
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    found.append("".join(current))
    return [" ".join(s.split()) for s in found if s.strip()]


def test_statement_splitter() -> None:
    sql = "SET a = 'x;y' ; -- c; d\nCREATE X IF NOT EXISTS a COMMENT = 'it''s -- fine';"
    assert statements(sql) == ["SET a = 'x;y'", "CREATE X IF NOT EXISTS a COMMENT = 'it''s -- fine'"]


def variables() -> dict[str, str]:
    found = {}
    for statement in statements():
        if match := re.fullmatch(r"SET (\w+) = '([^']*)'", statement):
            found[match[1]] = match[2]
    return found


def test_every_statement_parses_as_snowflake_sql() -> None:
    parsed, matched = [], []
    for statement in statements():
        tree = sqlglot.parse_one(statement, read="snowflake")
        if isinstance(tree, exp.Command):
            kinds = [k for k, syntax in COMMAND_SYNTAX.items() if re.fullmatch(syntax, statement)]
            assert kinds, f"not Snowflake syntax this test knows: {statement}"
            matched.append(statement)
        else:
            assert isinstance(tree, exp.Set | exp.Use | exp.Create | exp.Grant), statement
            parsed.append(statement)
    assert len(parsed) >= 12 and len(matched) >= 10  # the file is not empty or half-commented


def test_variables_are_set_before_use_and_idempotent_creates() -> None:
    seen: set[str] = set()
    for statement in statements():
        if match := re.fullmatch(r"SET (\w+) = '[^']*'", statement):
            seen.add(match[1])
            continue
        for name in re.findall(r"\$(\w+)", statement):
            assert name in seen, f"${name} used before it is SET: {statement}"
        if statement.startswith("CREATE"):
            assert " IF NOT EXISTS " in statement, f"not idempotent: {statement}"
        assert " OR REPLACE " not in statement


def test_runs_as_sysadmin_and_securityadmin_never_accountadmin() -> None:
    roles = [s.removeprefix("USE ROLE ") for s in statements() if s.startswith("USE ROLE")]
    assert roles == ["SYSADMIN", "SECURITYADMIN"]
    assert "ACCOUNTADMIN" not in " ".join(statements())


def test_loader_gets_exactly_what_dlt_uses() -> None:
    loader_grants = sorted(
        re.sub(r" TO ROLE .*", "", s) for s in statements() if s.endswith("TO ROLE IDENTIFIER($loader_role)")
    )
    assert loader_grants == [
        "GRANT CREATE SCHEMA ON DATABASE IDENTIFIER($database_name)",
        "GRANT USAGE ON DATABASE IDENTIFIER($database_name)",
        "GRANT USAGE ON WAREHOUSE IDENTIFIER($warehouse_name)",
    ]
    reader_grants = [s for s in statements() if s.endswith("TO ROLE IDENTIFIER($reader_role)")]
    assert all(" ON ALL " in s or " ON FUTURE " in s or " ON DATABASE " in s for s in reader_grants)
    assert {"SCHEMAS", "TABLES"} <= {s.split(" IN DATABASE")[0].split()[-1] for s in reader_grants}
    assert all(re.search(r"GRANT (USAGE|SELECT) ", s) for s in reader_grants)  # read-only


def test_every_grant_says_what_it_is_for() -> None:
    lines = [line.strip() for line in SETUP.read_text().splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("GRANT "):
            assert lines[i - 1].startswith(("--", "GRANT ")), f"no comment before: {line}"


def test_names_agree_with_the_secrets_example_and_docs() -> None:
    names = variables()
    assert names == {
        "database_name": "RAW",
        "warehouse_name": "LOADING",
        "loader_role": "SVC_DLT_ROLE",
        "loader_user": "SVC_DLT",
        "reader_role": "TRANSFORMER",
    }
    example = (ROOT / ".dlt" / "secrets.toml.example").read_text()
    credentials = tomllib.loads(example)["destination"]["snowflake"]["credentials"]
    expected = {
        "username": names["loader_user"],
        "role": names["loader_role"],
        "warehouse": names["warehouse_name"],
        "database": names["database_name"],
    }
    assert {k: credentials[k] for k in expected} == expected
    # the vault layout example, in the secrets example (a comment) and in docs/configuration.md
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    for text in (example.replace("\n#   ", " ").replace("\n#    ", " "), configuration):
        start = text.index('{"host": ')
        document = json.loads(text[start : text.index("}", start) + 1].replace("\\n...", ""))
        assert {k: document[k] for k in expected} == expected
    docs = (ROOT / "docs" / "snowflake.md").read_text()
    for name in names.values():
        assert re.search(rf"\b{name}\b", docs), f"docs/snowflake.md does not mention {name}"
    assert "snowflake/setup.sql" in docs and "tools.secrets preflight" in docs
    pipe = (ROOT / "snowflake" / "exchange_rates.sql").read_text()
    databases = set(re.findall(r"\b(\w+)\.EXCHANGE_RATES\b", pipe))
    assert databases == {names["database_name"]}


def test_no_other_name_for_the_loader_user() -> None:
    try:
        tracked = subprocess.run(
            ["git", "grep", "-il", "dlt_loader", "--", ".", f":!{Path(__file__).relative_to(ROOT)}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip("git is not installed")
    assert tracked.stdout == "", f"DLT_LOADER still named in: {tracked.stdout}"
