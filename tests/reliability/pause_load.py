"""Run a pipeline's CLI with its load step paused, so a test can SIGKILL it mid-load or race it.

    RELIABILITY_PAUSE_MARKER=/tmp/x.paused python -m tests.reliability.pause_load pipelines.currencies

When the load step starts the first job of a data table (dlt's own ``_dlt_*`` tables are not paused), it
writes the table name to the marker file and waits until ``<marker>.release`` exists (at most 60 s),
then carries on. Everything else - the CLI, dlt, the destination - is the real thing.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dlt.common.destination.client import RunnableLoadJob
from dlt.common.storages.load_package import ParsedLoadJobFileName

MARKER = Path(os.environ["RELIABILITY_PAUSE_MARKER"])
_original = RunnableLoadJob.run_managed
_lock = threading.Lock()


def _paused(self: RunnableLoadJob, job_client: Any, done_event: Any, /) -> None:
    table = ParsedLoadJobFileName.parse(self._file_path).table_name
    if not table.startswith("_dlt"):
        with _lock:
            first = not MARKER.exists()
            if first:  # written whole, then renamed: the test never reads a half-written marker
                partial = Path(f"{MARKER}.tmp")
                partial.write_text(table)
                os.replace(partial, MARKER)
        if first:
            deadline = time.monotonic() + 60
            while not Path(f"{MARKER}.release").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
    _original(self, job_client, done_event)


RunnableLoadJob.run_managed = _paused  # type: ignore[method-assign]

if __name__ == "__main__":
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
