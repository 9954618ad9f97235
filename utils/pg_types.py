"""PostgreSQL column types -> what dlt loads: a native type where one keeps the value exactly, else text.

Two functions carry one decision (docs/products.md has the full map, one row per type):

- :func:`dlt_type` is ``sql_table``'s ``type_adapter_callback``: the SQLAlchemy type dlt reflects a
  column as, so the schema (and its frozen type contract) says from the first run what the data will be.
- :func:`select_expression` builds the column's place in the ``COPY`` query from its dlt hint, so
  PostgreSQL itself turns a type without a native counterpart into its own text form (``inet``,
  ``interval``, ranges, ...) or JSON (arrays of such types) - in C, column by column, never row by row
  in Python, and never as binary wire format.

Because the query follows the hint, a per-column hint override (``text``, ``double``,
``decimal(p,s)``) changes both what is selected and what the destination column becomes.
"""

from __future__ import annotations

import re
from typing import Any, Final

import sqlalchemy as sa
from dlt.common.schema.typing import TColumnSchema
from sqlalchemy.dialects import postgresql as pg

DEFAULT_DECIMAL: Final = (38, 9)
"""Precision and scale of a decimal hint that has none (dlt's default decimal). A ``numeric`` declared
without them loads as text (see :func:`dlt_type`); a warehouse column loaded as this before keeps it."""
MAX_DECIMAL_PRECISION: Final = 38
"""The widest exact decimal both DuckDB and Snowflake hold; wider ``numeric(p,s)`` load as text."""
MONEY: Final = (19, 2)
"""``money`` is a 64-bit count of cents: at most 92233720368547758.07."""
PLAIN_TEXT: Final = (sa.TEXT, sa.VARCHAR, sa.CHAR, sa.String)
"""Exactly these types arrive as text from the driver (enums, ``citext`` and other subclasses do not)."""
NATIVE_ARRAY_ITEMS: Final = (sa.Integer, sa.Float, sa.Boolean)
"""With plain text: array element types the driver reads as Arrow lists (JSON arrays downstream)."""
OVERRIDES: Final = re.compile(r"^(text|double|bigint|decimal\((\d+),\s*(\d+)\))$")


def base_type(sa_type: Any) -> Any:
    """A domain's underlying type (recursively); any other type as it is."""
    while isinstance(sa_type, pg.DOMAIN):
        sa_type = sa_type.data_type
    return sa_type


def _is_plain_text(sa_type: Any) -> bool:
    return type(sa_type) in PLAIN_TEXT


def _is_native_array(sa_type: Any) -> bool:
    if not isinstance(sa_type, sa.ARRAY):
        return False
    item = base_type(sa_type.item_type)
    return _is_plain_text(item) or isinstance(item, NATIVE_ARRAY_ITEMS)


def is_unconstrained_numeric(sa_type: Any) -> bool:
    """``numeric`` without precision (or a domain over it): what :func:`dlt_type` loads as text."""
    sa_type = base_type(sa_type)
    return type(sa_type) in (sa.Numeric, pg.NUMERIC) and sa_type.precision is None


def dlt_type(sa_type: Any) -> Any:
    """The SQLAlchemy type dlt should reflect ``sa_type`` as (``type_adapter_callback``)."""
    sa_type = base_type(sa_type)
    if isinstance(sa_type, pg.MONEY):
        return sa.Numeric(*MONEY)
    if isinstance(sa_type, pg.OID):
        return sa.BigInteger()
    if isinstance(sa_type, sa.Numeric) and not isinstance(sa_type, sa.Float):
        if sa_type.precision is None:
            # any scale, NaN and Infinity: PostgreSQL's own text form keeps every value exactly
            return sa.Text()
        if sa_type.precision > MAX_DECIMAL_PRECISION:
            return sa.Text()
        return sa_type
    if isinstance(sa_type, sa.Uuid):
        return sa.Text()
    if isinstance(sa_type, sa.Time) and sa_type.timezone:
        return sa.Text()  # timetz: no destination has a time with an offset
    if isinstance(sa_type, sa.ARRAY):
        return sa_type if _is_native_array(sa_type) else sa.JSON()
    if isinstance(sa_type, (sa.JSON, sa.Boolean, sa.Integer, sa.Float, sa.DateTime, sa.Date, sa.Time)):
        return sa_type
    if _is_plain_text(sa_type):
        # text, varchar, char, name, "char": unbounded, so a widened (or narrowed) varchar changes nothing
        return sa.Text()
    if isinstance(sa_type, sa.LargeBinary):
        return sa.LargeBinary()  # bytea
    return sa.Text()  # interval, enums, geometric, network, bit strings, text search, xml, ranges...


def select_expression(column: sa.ColumnElement[Any], hint: TColumnSchema) -> sa.ColumnElement[Any]:
    """``column`` as the ``COPY`` query should select it to arrive as ``hint`` says (same name)."""
    sa_type = base_type(column.type)
    wanted = hint.get("data_type")
    # money has no cast but to numeric (and numeric keeps it exact)
    source = sa.cast(column, sa.Numeric) if isinstance(sa_type, pg.MONEY) else column
    expression: sa.ColumnElement[Any] | None = None
    if wanted == "text" and isinstance(sa_type, pg.INET):
        expression = sa.func.abbrev(column, type_=sa.Text)  # inet's own form: 10.0.0.1, not 10.0.0.1/32
    elif wanted == "text" and not _is_plain_text(sa_type):
        expression = sa.cast(source, sa.Text)
    elif wanted == "double" and not isinstance(sa_type, sa.Float):
        expression = sa.cast(source, pg.DOUBLE_PRECISION)
    elif wanted == "bigint" and not isinstance(sa_type, sa.Integer):
        expression = sa.cast(source, sa.BigInteger)
    elif wanted == "json" and isinstance(sa_type, sa.ARRAY) and not _is_native_array(sa_type):
        expression = sa.func.to_json(column, type_=sa.Text)
    elif source is not column:
        expression = source
    return column if expression is None else expression.label(column.name)


def with_casts(query: Any, hints: dict[str, TColumnSchema]) -> Any:
    """``query`` (dlt's ``SELECT``) with each column selected as :func:`select_expression` says."""
    if not isinstance(query, sa.Select):
        return query
    return query.with_only_columns(
        *(
            select_expression(column, hints.get(column.name, {})) if isinstance(column, sa.Column) else column
            for column in query.selected_columns
        ),
        maintain_column_froms=True,
    )


def override_hint(table: str, column: str, value: str) -> TColumnSchema:
    """A column hint from a ``[sources.products]`` override: ``text``, ``double``, ``bigint`` or
    ``decimal(p,s)`` (p at most 38)."""
    match = OVERRIDES.match(str(value).strip().lower())
    if not match:
        raise ValueError(
            f"sources.products.tables: {table}.columns.{column} = {value!r}: use text, double, bigint or"
            " decimal(p,s)"
        )
    if match.group(2) is None:
        # no precision or scale left over from the reflected type (a text column would become varchar(38))
        return {"data_type": match.group(1), "precision": None, "scale": None}  # type: ignore[typeddict-item]
    precision, scale = int(match.group(2)), int(match.group(3))
    if not 0 < precision <= MAX_DECIMAL_PRECISION or scale > precision:
        raise ValueError(
            f"sources.products.tables: {table}.columns.{column} = {value!r}: precision 1-38, scale at"
            " most the precision"
        )
    return {"data_type": "decimal", "precision": precision, "scale": scale}


def arrays_as_json_text(query: Any, hints: dict[str, TColumnSchema]) -> Any:
    """``query`` with every array column hinted ``json`` selected as its JSON text (``to_json``), not
    as the Arrow list the driver reads for arrays of integers, floats, booleans and text: for a
    destination that must receive every JSON column as text (Snowflake's, ``utils/snowflake_json.py``)."""
    if not isinstance(query, sa.Select):
        return query
    return query.with_only_columns(
        *(
            sa.cast(sa.func.to_json(column), sa.Text).label(column.name)
            if isinstance(column, sa.Column)
            and isinstance(base_type(column.type), sa.ARRAY)
            and hints.get(column.name, {}).get("data_type") == "json"
            else column
            for column in query.selected_columns
        ),
        maintain_column_froms=True,
    )
