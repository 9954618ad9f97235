"""Run the products CLI and SIGKILL it at one point of a change-capture run.

    CDC_KILL_AT=read python -m tests.pipelines.cdc_kill      # at the first change read from the stream
    CDC_KILL_AT=confirm python -m tests.pipelines.cdc_kill   # loaded, deletes applied, slot not confirmed

Everything else - the CLI, the replication connection, dlt, the destination - is the real thing.
"""

from __future__ import annotations

import os
import runpy
import signal
from typing import Any

from sources.products import capture, replication


def _die(*_args: Any, **_kwargs: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if os.environ["CDC_KILL_AT"] == "read":
    replication._record = _die
elif os.environ["CDC_KILL_AT"] == "confirm":
    capture.Capture.confirm = _die  # type: ignore[method-assign]

if __name__ == "__main__":
    runpy.run_module("pipelines.products", run_name="__main__", alter_sys=True)
