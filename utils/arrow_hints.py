"""Arrow batches that agree with the dlt column hints they load under, and a check that they do.

dlt compares the schema of every Arrow batch a resource yields with the resource's column hints and,
when any hint differs, logs one vague WARNING per batch ("several column hints were different"),
the details only at INFO. Two differences are not disagreements about the data:

- nullability: a column reflected as ``NOT NULL`` arrives from a driver as a nullable Arrow field.
  :func:`declared_schema` marks it not nullable, as the database guarantees, so nothing differs.
- JSON: dlt has no Arrow type for JSON text (only nested Arrow types map to its ``json``), so a
  ``json``/``jsonb`` column always travels as ``string`` and its hint, as intended, decides the
  destination type (DuckDB ``JSON``, Snowflake ``VARIANT``).

:func:`hint_disagreements` compares a read's Arrow schema with the hints as dlt does. A loader calls
:func:`expect_json_text_only` around a read: any other disagreement is logged once as a WARNING
naming the columns and both values, and when JSON text is the only one, :class:`JsonTextFilter`
drops dlt's per-batch message for that resource while the read lasts (and the one for a batch dlt
writes just after it ended). Every other dlt warning, and
this one for any other resource or any real disagreement, stays visible.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import pyarrow as pa
from dlt.common.libs.pyarrow import UnsupportedArrowTypeException, py_arrow_to_table_schema_columns

logger = logging.getLogger(__name__)

DLT_MESSAGE: Final = "when merging arrow schema with dlt schema, several column hints were different"


def declared_schema(fields: list[pa.Field], hints: dict[str, Any]) -> pa.Schema:
    """``fields`` without metadata, not nullable where the column's hint says ``nullable: False``."""
    return pa.schema(
        [
            pa.field(field.name, field.type, nullable=hints.get(field.name, {}).get("nullable") is not False)
            for field in fields
        ]
    )


def hint_disagreements(schema: pa.Schema, hints: dict[str, Any]) -> list[str]:
    """Hints dlt would find different from ``schema``, as ``column.hint: hint vs arrow``; JSON text
    in a ``json`` column is not one (see the module docstring)."""
    found = []
    for name, inferred in py_arrow_to_table_schema_columns(schema).items():
        declared = hints.get(name) or {}
        json_text = declared.get("data_type") == "json" and inferred.get("data_type") == "text"
        for hint, value in inferred.items():
            if hint == "data_type" and json_text:
                continue
            if (wanted := declared.get(hint)) is not None and wanted != value:
                found.append(f"{name}.{hint}: {wanted!r} vs {value!r}")
    return found


def has_json_text(schema: pa.Schema, hints: dict[str, Any]) -> bool:
    """Whether a ``json`` column of ``hints`` travels as text in ``schema`` (dlt then warns)."""
    return any(
        (hints.get(field.name) or {}).get("data_type") == "json"
        and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type))
        for field in schema
    )


class JsonTextFilter(logging.Filter):
    """Drops dlt's "several column hints were different" warning for resources being read whose
    only difference is JSON text (registered by :func:`expect_json_text_only`).

    dlt may write a read's last batch (and warn) just after the read has ended, when its extraction
    worker finished the read before the batch was taken up: a read that ends before its warning came
    keeps dropping that one late warning."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._resources: dict[str, int] = {}
        self._warned: set[str] = set()
        self._late: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or not (self._resources or self._late):
            return True
        message = record.getMessage()
        if DLT_MESSAGE not in message:
            return True
        with self._lock:
            for name in (*self._resources, *self._late):
                if message.startswith(f"In resource: {name}, "):
                    self._warned.add(name)
                    self._late.discard(name)
                    return False
        return True

    @contextmanager
    def expecting(self, resource: str) -> Iterator[None]:
        with self._lock:
            if resource not in self._resources:
                self._warned.discard(resource)
                self._late.discard(resource)
            self._resources[resource] = self._resources.get(resource, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._resources[resource] -= 1
                if not self._resources[resource]:
                    del self._resources[resource]
                    if resource not in self._warned:
                        self._late.add(resource)
                    self._warned.discard(resource)


JSON_TEXT_FILTER: Final = JsonTextFilter()
logging.getLogger("dlt").addFilter(JSON_TEXT_FILTER)


@contextmanager
def expect_json_text_only(resource: str, schema: pa.Schema, hints: dict[str, Any]) -> Iterator[None]:
    """While reading ``resource`` as batches of ``schema``: warn once, precisely, about hints that
    disagree with it, or, when none do, drop dlt's vague per-batch warning about JSON text."""
    try:
        found = hint_disagreements(schema, hints)
    except UnsupportedArrowTypeException:  # dlt reports it when it extracts the batch
        yield
        return
    if found:
        logger.warning(
            "%s: the Arrow batches disagree with the column hints (hint vs arrow; the hint wins when "
            "loading): %s",
            resource,
            "; ".join(found),
        )
        yield
        return
    if not has_json_text(schema, hints):  # nothing differs, so dlt does not warn
        yield
        return
    with JSON_TEXT_FILTER.expecting(resource):
        yield
