"""Copied into a fleet worker's ``sitecustomize.py``: lets the test pause one flow run at its load step.

Every Python process of the worker imports it at start-up (``PYTHONPATH``). When ``FLEET_PAUSE_DIR``
is set and the test has created ``<dir>/arm-<n>`` files, each process that starts loading a data table
claims one (an atomic rename, so one run pauses per file), writes ``<dir>/paused-<pid>`` with the table name
and waits for ``<dir>/release-<pid>`` (at most 120 s). The test SIGKILLs that pid, or cuts the worker's
Prefect API while it waits. Everything else - Prefect, dlt, the destination - is the real thing.

Each process of a flow run also writes ``<dir>/probe-<pid>.json``: its flow run, ``sys.prefix`` and a
few package versions, so a test can tell which Python environment the run really used.
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


def _probe(directory: str) -> None:
    """Record which Python environment this process of a flow run runs in: ``probe-<pid>.json``."""
    import json
    import sys
    from importlib import metadata
    from pathlib import Path

    versions: dict[str, str | None] = {}
    for name in os.environ.get("FLEET_PROBE_PACKAGES", "prefect,dlt,pytest-timeout").split(","):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    facts = {"flow_run_id": os.environ["PREFECT__FLOW_RUN_ID"], "prefix": sys.prefix, "versions": versions}
    partial = Path(directory) / f"probe-{os.getpid()}.tmp"
    partial.write_text(json.dumps(facts))
    os.replace(partial, Path(directory) / f"probe-{os.getpid()}.json")


if _DIR and os.environ.get("PREFECT__FLOW_RUN_ID"):
    _probe(_DIR)

if _DIR:
    import contextlib

    with contextlib.suppress(ImportError):  # a Python without dlt: nothing to pause
        _install(_DIR)
