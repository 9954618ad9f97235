"""Copied into a fleet worker's ``sitecustomize.py``: lets the test pause one flow run at its load step.

Every Python process of the worker imports it at start-up (``PYTHONPATH``). When ``FLEET_PAUSE_DIR``
is set and the test has created ``<dir>/arm-<n>`` files, each process that starts loading a data table
claims one (an atomic rename, so one run pauses per file), writes ``<dir>/paused-<pid>`` with the table name
and waits for ``<dir>/release-<pid>`` (at most 120 s). The test SIGKILLs that pid, or cuts the worker's
Prefect API while it waits. Everything else - Prefect, dlt, the destination - is the real thing.
"""

import os

_DIR = os.environ.get("FLEET_PAUSE_DIR")


def _install(directory: str) -> None:
    import time
    from pathlib import Path
    from typing import Any

    from dlt.common.destination.client import RunnableLoadJob
    from dlt.common.storages.load_package import ParsedLoadJobFileName

    original = RunnableLoadJob.run_managed
    root = Path(directory)

    def paused(self: RunnableLoadJob, job_client: Any, done_event: Any, /) -> None:
        table = ParsedLoadJobFileName.parse(self._file_path).table_name
        if not table.startswith(("_dlt", "_pipeline_metrics")):  # bookkeeping: never paused
            pid = os.getpid()
            claimed = False
            for arm in sorted(root.glob("arm-*")):
                try:
                    os.rename(arm, root / f"claimed-{pid}")
                except FileNotFoundError:
                    continue  # another run took this one
                claimed = True
                break
            if claimed:
                partial = root / f"paused-{pid}.tmp"
                partial.write_text(table)
                os.replace(partial, root / f"paused-{pid}")
                deadline = time.monotonic() + 120
                while not (root / f"release-{pid}").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
        original(self, job_client, done_event)

    RunnableLoadJob.run_managed = paused  # type: ignore[method-assign]


if _DIR:
    import contextlib

    with contextlib.suppress(ImportError):  # a Python without dlt: nothing to pause
        _install(_DIR)
