"""Run a pipeline's CLI with a hook in its load step, so a test can SIGKILL it mid-load or race it.

    RELIABILITY_PAUSE_MARKER=/tmp/x.paused python -m tests.reliability.pause_load pipelines.currencies

When the load step starts the first job of a data table (dlt's own ``_dlt_*`` tables are not paused), it
writes the table name to the marker file and waits until ``<marker>.release`` exists (at most 60 s),
then carries on.

    RELIABILITY_KILL_AFTER_COMMIT=contacts RELIABILITY_PAUSE_MARKER=/tmp/x.killed python -m ...

Instead of pausing: the first job that commits rows of that table runs to its end (a file load; for merge
and replace on DuckDB, the SQL that reads the files into the table), then the process writes the marker
and SIGKILLs itself before dlt records the job as done - the instant a real kill or power cut can hit.
Everything else - the CLI, dlt, the destination - is the real thing.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dlt.common.destination.client import RunnableLoadJob
from dlt.common.storages.load_package import ParsedLoadJobFileName

MARKER = Path(os.environ["RELIABILITY_PAUSE_MARKER"])
KILL_AFTER_COMMIT = os.environ.get("RELIABILITY_KILL_AFTER_COMMIT")
_original = RunnableLoadJob.run_managed
_original_release = RunnableLoadJob._release
_lock = threading.Lock()


def _write_marker(table: str) -> bool:
    """Write ``table`` to the marker unless it exists; True if this call wrote it."""
    with _lock:
        if MARKER.exists():
            return False
        partial = Path(f"{MARKER}.tmp")  # written whole, then renamed: never read half-written
        partial.write_text(table)
        os.replace(partial, MARKER)
        return True


def _paused(self: RunnableLoadJob, job_client: Any, done_event: Any, /) -> None:
    table = ParsedLoadJobFileName.parse(self._file_path).table_name
    if not table.startswith(("_dlt", "_pipeline_metrics")) and _write_marker(table):
        deadline = time.monotonic() + 60
        while not Path(f"{MARKER}.release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    _original(self, job_client, done_event)


def _killed_after_commit(self: RunnableLoadJob, next_state: Any) -> None:
    parsed = ParsedLoadJobFileName.parse(self._file_path)
    is_target = parsed.table_name == KILL_AFTER_COMMIT
    if next_state == "completed" and is_target and _write_marker(parsed.table_name):
        os.kill(os.getpid(), signal.SIGKILL)  # committed, not yet recorded as done by dlt
    _original_release(self, next_state)


if KILL_AFTER_COMMIT:
    RunnableLoadJob._release = _killed_after_commit  # type: ignore[method-assign]
else:
    RunnableLoadJob.run_managed = _paused  # type: ignore[method-assign]

if __name__ == "__main__":
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
