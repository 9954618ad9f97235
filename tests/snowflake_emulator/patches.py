"""Emulator-side compatibility patches: what fakesnow 0.12.1 lacks for dlt's real Snowflake destination.

dlt's ``snowflake`` destination loads a file with ``PUT`` into the table stage and ``COPY INTO`` from it.
fakesnow 0.12.1 runs both, but trips over the exact SQL dlt writes:

1. ``PUT 'file://...' '@"SCHEMA"."%TABLE"/"load_id"'``: the stage is a quoted string literal, which
   fakesnow keeps quotes and all, then rejects as "does not start with @".
2. ``FILE_FORMAT = (TYPE = 'PARQUET', BINARY_AS_TEXT = FALSE, ...)``: comma-separated options parse with
   ``SequenceProperties`` separators that fakesnow's option parser refuses.
3. ``MATCH_BY_COLUMN_NAME='CASE_INSENSITIVE'``: a quoted value, where fakesnow only accepts a bare word.
4. ``COPY`` of newline-delimited JSON (``FILE_FORMAT = (TYPE = 'JSON')``) ``MATCH_BY_COLUMN_NAME`` into
   typed columns: fakesnow only loads JSON into a single VARIANT column. dlt writes its own
   ``_dlt_pipeline_state`` rows (and any resource hinted ``file_format="jsonl"``) as JSON lines.
5. Not a parser gap but a behaviour gap, closed the other way: a text column copied into a VARIANT
   column stays a VARIANT *string* on Snowflake (``COPY ... MATCH_BY_COLUMN_NAME`` does not parse it;
   https://dlthub.com/docs/dlt-ecosystem/destinations/snowflake#supported-file-formats), where
   fakesnow's DuckDB cast parsed it into an object. The patch makes the emulator keep the string, so a
   pipeline that loads JSON as parquet text fails its path queries here as it would on Snowflake.
   Alongside, the JSON file format's ``BINARY_FORMAT = 'BASE64'`` (which dlt sets) is honoured: a
   base64 string copied into a BINARY column is decoded, where fakesnow stored the base64 text.

6. Also a behaviour gap: with autocommit off, Snowflake counts ``TRUNCATE`` as DML, so it opens (or
   joins) the session's transaction and a ``ROLLBACK`` brings the rows back
   (https://docs.snowflake.com/en/sql-reference/transactions: "The term DML refers to INSERT, UPDATE,
   DELETE, MERGE, and TRUNCATE statements"). fakesnow opens its implicit transaction for the other
   four only, so a ``TRUNCATE`` committed at once and a failed replace swap left the table empty here
   where Snowflake keeps the rows. The patch opens the transaction for ``TRUNCATE`` too.

7. A function gap: ``AS_VARCHAR(variant)`` returns the string a VARIANT holds, without quotes, and NULL
   for a VARIANT holding anything else (https://docs.snowflake.com/en/sql-reference/functions/as_char-varchar:
   "If the type of the value in the variant_expr argument doesn't match the type of the output value,
   the function returns NULL"). fakesnow has no such function ("Scalar Function with name as_varchar
   does not exist"), and its ``::VARCHAR`` of a VARIANT string keeps the JSON quotes, where Snowflake
   drops them. ``utils/snowflake_json.py`` reads JSON text staged from parquet with it. The patch
   translates it to DuckDB's ``json_extract_string`` when ``json_type`` is ``VARCHAR``.

Patches 1-4 rewrite the parsed statement into the form fakesnow already supports and call fakesnow's
own code; patch 5 changes what a VARIANT column receives from a text column, as Snowflake does; patch 6
starts fakesnow's own implicit transaction where Snowflake would; patch 7 adds a function.
They touch fakesnow internals, so they are pinned to one fakesnow version and refuse to load on any
other: re-check them when you bump fakesnow.

What the 5.x connector needs on top (login fields, result encoding, PUT answers) lives in
:mod:`tests.snowflake_emulator.connector5`, each patch with its evidence; :func:`apply` installs those too.
The client side is untouched except for one capability (see :func:`single_statement_capabilities`).
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable
from typing import Any, Final

import sqlglot
from sqlglot import exp

from tests.snowflake_emulator import connector5

PINNED_FAKESNOW: Final = "0.12.1"
JSON_FILE: Final = re.compile(r"\.jsonl?(\.gz)?$")


class EmulatorVersionError(RuntimeError):
    """fakesnow is not the version these patches were written and tested against."""


def check_version() -> None:
    installed = importlib.metadata.version("fakesnow")
    if installed != PINNED_FAKESNOW:
        raise EmulatorVersionError(
            f"tests/snowflake_emulator/patches.py is written for fakesnow=={PINNED_FAKESNOW}, but "
            f"{installed} is installed: re-check each patch against the new version (and drop the ones it "
            "no longer needs), then update PINNED_FAKESNOW and the pin in pyproject.toml."
        )


def _unquote_put_target(expression: exp.Expr) -> exp.Expr:
    """Patch 1: ``PUT ... '@"S"."%T"/"id"'`` -> ``PUT ... @"S"."%T"/"id"`` (the form fakesnow parses)."""
    if isinstance(expression, exp.Put) and isinstance(target := expression.args.get("target"), exp.Var):
        text = target.this
        if len(text) >= 2 and text[0] == text[-1] == "'":
            target.set("this", text[1:-1].replace("''", "'"))
    return expression


def _normalise_copy(expression: exp.Copy) -> exp.Copy:
    """Patches 2 and 3: drop option separators and unquote ``MATCH_BY_COLUMN_NAME``'s value."""
    for param in expression.args.get("params") or []:
        name = param.this.name.upper() if isinstance(param.this, exp.Var) else ""
        if name == "FILE_FORMAT":
            param.set(
                "expressions", [e for e in param.expressions if not isinstance(e, exp.SequenceProperties)]
            )
        elif name == "MATCH_BY_COLUMN_NAME" and isinstance(
            value := param.args.get("expression"), exp.Literal
        ):
            param.set("expression", exp.var(value.name.upper()))
    return expression


def _json_by_column_name() -> tuple[type, Callable[..., list[str]]]:
    """Patch 4: JSON lines read as records, matched to the table's columns like parquet is."""
    import fakesnow.copy_into as copy_into

    original_names: Callable[..., list[str]] = copy_into._get_parquet_column_names

    class ReadJsonRecords(copy_into.ReadParquet):
        """One column per top-level key (not one VARIANT per line), through fakesnow's by-name path."""

        def read_expression(self, url: str) -> exp.Expr:
            return exp.func(
                "read_json",
                exp.Literal.string(url),
                exp.EQ(this=exp.var("format"), expression=exp.Literal.string("newline_delimited")),
            )

    def column_names(url: str, duck_conn: Any) -> list[str]:
        if not JSON_FILE.search(url):
            return original_names(url, duck_conn)
        read = ReadJsonRecords().read_expression(url).sql(dialect="duckdb")
        return [row[0] for row in duck_conn.execute(f"DESCRIBE SELECT * FROM {read}").fetchall()]

    return ReadJsonRecords, column_names


def _variant_text_stays_text() -> tuple[Callable[..., list[str]], Callable[..., list[exp.Expr]]]:
    """Patch 5: in a by-name COPY, a VARCHAR file column bound for a VARIANT (DuckDB ``JSON``) column
    is wrapped in ``to_json``, so it lands as a JSON string as on Snowflake, not as the parsed value;
    from JSON lines, a VARCHAR bound for a BINARY (``BLOB``) column is decoded from base64, and a
    string bound for a text column is read as text (DuckDB's ``read_json`` would guess ``"-Infinity"``
    is a date; Snowflake keeps the string).

    Returns replacements for ``fakesnow.copy_into._get_table_columns`` (which also notes the target
    table, as it runs first) and ``fakesnow.copy_into._inserts``.
    """
    import threading

    import fakesnow.copy_into as copy_into

    original_columns: Callable[..., list[str]] = copy_into._get_table_columns
    original_inserts: Callable[..., list[exp.Expr]] = copy_into._inserts
    target = threading.local()

    def table_columns(table: Any, duck_conn: Any, database: Any, schema: Any) -> list[str]:
        described = copy_into._describe_table(table, duck_conn, database, schema)
        target.variants = {name.upper() for name, kind in described if kind == "JSON"}
        target.binaries = {name.upper() for name, kind in described if kind == "BLOB"}
        target.texts = {name.upper() for name, kind in described if kind == "VARCHAR"}
        target.conn = duck_conn
        return original_columns(table, duck_conn, database, schema)

    def inserts(expr: Any, params: Any, urls: list[str], parquet_info: Any = None) -> list[exp.Expr]:
        statements = original_inserts(expr, params, urls, parquet_info)
        variants: set[str] = getattr(target, "variants", set())
        binaries: set[str] = getattr(target, "binaries", set())
        texts: set[str] = getattr(target, "texts", set())
        conn = getattr(target, "conn", None)
        target.variants, target.binaries, target.texts, target.conn = set(), set(), set(), None
        if not (variants or binaries) or conn is None or not parquet_info or not parquet_info.target_columns:
            return statements
        for url, statement in zip(urls, statements, strict=True):
            read = params.file_format.read_expression(url).sql(dialect="duckdb")
            kinds = dict(row[:2] for row in conn.execute(f"DESCRIBE SELECT * FROM {read}").fetchall())
            if JSON_FILE.search(url) and any(
                name.upper() in texts and kind != "VARCHAR" for name, kind in kinds.items()
            ):
                kinds = {n: "VARCHAR" if n.upper() in texts else k for n, k in kinds.items()}
                spec = ", ".join(f"'{n}': '{k}'" for n, k in kinds.items())
                typed = sqlglot.parse_one(
                    f"SELECT * FROM read_json('{url}', format='newline_delimited', columns={{{spec}}})",
                    read="duckdb",
                )
                key = "from_" if "from_" in typed.args else "from"
                statement.expression.args[key].set("this", typed.args[key].this)
            for alias in statement.expression.expressions:
                column = alias.this
                if not (isinstance(alias, exp.Alias) and isinstance(column, exp.Column)):
                    continue
                if kinds.get(column.name) != "VARCHAR":
                    continue
                if alias.alias.upper() in variants:
                    alias.set("this", exp.func("to_json", column.copy()))
                elif alias.alias.upper() in binaries and JSON_FILE.search(url):
                    alias.set("this", exp.func("from_base64", column.copy()))
        return statements

    return table_columns, inserts


_applied = False


def apply() -> None:
    """Install the patches in this process (idempotent). Call before the emulator serves a query."""
    global _applied
    if _applied:
        return
    check_version()
    import fakesnow.copy_into
    import fakesnow.cursor
    import fakesnow.transforms

    original_put: Callable[..., exp.Expr] = fakesnow.transforms.put_stage
    original_copy: Callable[..., str] = fakesnow.cursor.copy_into

    def put_stage(expression: exp.Expr, *args: Any, **kwargs: Any) -> exp.Expr:
        return original_put(_unquote_put_target(expression), *args, **kwargs)

    def copy_into(duck_conn: Any, db: Any, schema: Any, expression: exp.Copy, *args: Any, **kw: Any) -> str:
        return original_copy(duck_conn, db, schema, _normalise_copy(expression), *args, **kw)

    fakesnow.transforms.put_stage = put_stage
    fakesnow.cursor.copy_into = copy_into  # type: ignore[assignment]
    read_json_records, column_names = _json_by_column_name()
    setattr(fakesnow.copy_into, "ReadJSON", read_json_records)  # noqa: B010 - a class, replaced on purpose
    fakesnow.copy_into._get_parquet_column_names = column_names
    table_columns, inserts = _variant_text_stays_text()
    fakesnow.copy_into._get_table_columns = table_columns
    fakesnow.copy_into._inserts = inserts
    cursor = fakesnow.cursor.FakeSnowflakeCursor
    cursor._execute = _truncate_is_dml(cursor._execute)  # type: ignore[method-assign]
    fakesnow.transforms.try_parse_json = _with_as_varchar(fakesnow.transforms.try_parse_json)  # type: ignore[assignment]
    connector5.apply()
    _applied = True


def _with_as_varchar(original: Callable[[exp.Expr], exp.Expr]) -> Callable[[exp.Expr], exp.Expr]:
    """Patch 7: one of fakesnow's per-node transforms, also turning ``AS_VARCHAR(v)`` into
    ``CASE WHEN json_type(v) = 'VARCHAR' THEN json_extract_string(v, '$') END`` (NULL otherwise)."""

    def transform(expression: exp.Expr) -> exp.Expr:
        if (
            isinstance(expression, exp.Anonymous)
            and expression.name.upper() == "AS_VARCHAR"
            and len(expression.expressions) == 1
        ):
            value = exp.cast(expression.expressions[0].copy(), "JSON")
            is_string = exp.EQ(this=exp.func("json_type", value), expression=exp.Literal.string("VARCHAR"))
            text = exp.func("json_extract_string", value.copy(), exp.Literal.string("$"))
            return exp.Case(ifs=[exp.If(this=is_string, true=text)])
        return original(expression)

    return transform


def _truncate_is_dml(original: Callable[..., None]) -> Callable[..., None]:
    """fakesnow's statement execution, opening the implicit transaction for ``TRUNCATE`` (patch 6)."""

    def execute(self: Any, transformed: exp.Expr, params: Any = None) -> None:
        opens = not self._conn._autocommit and not self._conn._in_transaction
        if opens and isinstance(transformed, exp.TruncateTable):
            self._duck_conn.begin()
            self._conn._in_transaction = True
        original(self, transformed, params)

    return execute


def single_statement_capabilities() -> Callable[[], None]:
    """Make dlt send one statement per request, as the emulator executes exactly one; returns an undo.

    Real Snowflake runs several ``;``-separated statements in one request (``MULTI_STATEMENT_COUNT``);
    fakesnow's server does not. dlt reads this from the destination's capabilities, which config cannot
    set, so the emulator fixture adjusts the ``snowflake`` factory's capabilities for the test's duration.
    Production code and the real-account suite keep dlt's default.
    """
    from dlt.destinations.impl.snowflake.factory import snowflake

    original = snowflake._raw_capabilities

    def raw_capabilities(self: snowflake) -> Any:
        caps = original(self)
        caps.supports_multiple_statements = False
        return caps

    snowflake._raw_capabilities = raw_capabilities  # type: ignore[method-assign]

    def undo() -> None:
        snowflake._raw_capabilities = original  # type: ignore[method-assign]

    return undo


def session_identity(user: str, role: str, warehouse: str | None) -> Callable[[], None]:
    """Answer ``CURRENT_USER()``, ``CURRENT_ROLE()``, ``CURRENT_WAREHOUSE()`` like Snowflake; returns an undo.

    fakesnow ignores the user, role and warehouse a client logs in with (DuckDB answers ``duckdb`` for
    the first two and has no ``CURRENT_WAREHOUSE``). Used by the preflight tests
    (``tests/tools/test_snowflake_preflight.py``): ``warehouse=None`` is what real Snowflake answers when
    the role may not use the warehouse it asked for. Self-contained; installed on top of any other patch.
    """
    import fakesnow.transforms

    values = {exp.CurrentUser: user, exp.CurrentRole: role, exp.CurrentWarehouse: warehouse}
    original: Callable[[exp.Expr], exp.Expr] = fakesnow.transforms.current_version

    def current_version(expression: exp.Expr) -> exp.Expr:
        for node_type, value in values.items():
            if isinstance(expression, node_type):
                return exp.Null() if value is None else exp.Literal.string(value)
        return original(expression)

    fakesnow.transforms.current_version = current_version

    def undo() -> None:
        fakesnow.transforms.current_version = original  # type: ignore[assignment]

    return undo


def deny(pattern: str, message: str) -> Callable[[], None]:
    """Refuse statements matching ``pattern`` with Snowflake's access-control error; returns an undo.

    fakesnow has no grants: every statement is allowed. This answers a matching statement (regular
    expression, case-insensitive, searched in the SQL text) the way Snowflake answers a role that lacks
    the privilege - error 003001, SQL state 42501, ``SQL access control error: <message>`` - from the
    server, so the client sees exactly what it would see from Snowflake. Self-contained.
    """
    import fakesnow.cursor
    import snowflake.connector.errors

    refused = re.compile(pattern, re.IGNORECASE)
    original: Callable[..., Any] = fakesnow.cursor.FakeSnowflakeCursor.execute

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        if refused.search(command):
            raise snowflake.connector.errors.ProgrammingError(
                msg=f"SQL access control error:\n{message}", errno=3001, sqlstate="42501"
            )
        return original(self, command, *args, **kwargs)

    fakesnow.cursor.FakeSnowflakeCursor.execute = execute  # type: ignore[method-assign]

    def undo() -> None:
        fakesnow.cursor.FakeSnowflakeCursor.execute = original  # type: ignore[method-assign]

    return undo
