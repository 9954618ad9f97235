"""Record the SQL statements the fakesnow emulator receives, to test what dlt emits where the emulator
cannot show its effect.

fakesnow answers some statements without running them (the fixture's ``nop_regexes``: dlt's ``REMOVE``
of staged files and ``ALTER SESSION SET QUERY_TAG``), so a test of staged-file removal or query tags
checks the statements dlt sent instead of their (absent) effect. Self-contained: it wraps fakesnow's
cursor for the duration of a ``with`` block and touches nothing else in ``patches.py``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Statement:
    """One statement as the emulator received it (one per request: see ``single_statement_capabilities``)."""

    sql: str
    answered_without_running: bool
    """True when fakesnow matched it against ``nop_regexes`` and answered success without running it."""


@contextmanager
def recorded_statements() -> Iterator[list[Statement]]:
    """Yield a list that fills with every statement the emulator executes inside the block."""
    from fakesnow.cursor import FakeSnowflakeCursor

    from tests.snowflake_emulator.patches import check_version

    check_version()  # wraps FakeSnowflakeCursor.execute(command, ...): pinned with the patches
    original = FakeSnowflakeCursor.execute
    statements: list[Statement] = []
    lock = threading.Lock()

    def execute(self: FakeSnowflakeCursor, command: str, *args: Any, **kwargs: Any) -> Any:
        nop = any(re.match(p, command, re.IGNORECASE) for p in self._conn.nop_regexes or ())
        with lock:
            statements.append(Statement(command, nop))
        return original(self, command, *args, **kwargs)

    FakeSnowflakeCursor.execute = execute  # type: ignore[method-assign]
    try:
        yield statements
    finally:
        FakeSnowflakeCursor.execute = original  # type: ignore[method-assign]
