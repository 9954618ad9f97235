"""Progress of a running pipeline: live on a terminal, a log line at an interval everywhere else.

dlt reports progress through its collectors (``dlt.common.runtime.collector``): every extract,
normalise and load step calls ``update(name, inc, total)`` with rows per table, files and jobs.
:func:`progress_collector` picks the collector for where the run is:

- **a terminal**: :class:`RichCollector`, one live line per table with rows, rows per second and
  elapsed time, redrawn by rich's own refresh thread several times a second, so the display keeps
  moving while a source waits for its next page (dlt's tqdm and enlighten adapters redraw only when
  rows arrive; rich ships with Prefect already);
- **no terminal** (CI, Prefect workers, pipes): dlt's ``LogCollector`` writing one block of plain
  lines (rows, rate, elapsed per table; memory and CPU) every :data:`PROGRESS_LOG_SECONDS` and at the
  end of each step to the ``data_pipelines.progress`` logger, which flows route into the Prefect run
  log; never a control character.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final, TextIO

from dlt.common.runtime.collector import Collector, LogCollector
from rich.console import Console
from rich.progress import Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

PROGRESS_LOG_SECONDS: float = 15.0
"""Without a terminal: seconds between progress log blocks (and one at the end of every step)."""
REFRESH_PER_SECOND: Final = 4.0
"""On a terminal: redraws per second, whether or not rows arrived."""
PROGRESS_LOGGER: Final = logging.getLogger("data_pipelines.progress")


class RateColumn(ProgressColumn):
    """Rows per second since the counter started (rich's own ``speed`` needs a full sample window)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.0f}/s", style="progress.data.speed")


class RichCollector(Collector):
    """A dlt collector drawing one live line per counter (table, files, jobs) with rich."""

    def __init__(self, console: Console | None = None, refresh_per_second: float = REFRESH_PER_SECOND):
        self.console = console or Console(stderr=True)
        self.refresh_per_second = refresh_per_second
        self.step = ""
        self._progress: Progress | None = None
        self._tasks: dict[str, Any] = {}

    def update(
        self,
        name: str,
        inc: int = 1,
        total: int | None = None,
        inc_total: int | None = None,
        message: str | None = None,
        label: str = "",
    ) -> None:
        if self._progress is None:
            return
        key = f"{name}[{label}]" if label else name
        task_id = self._tasks.get(key)
        if task_id is None:
            task_id = self._progress.add_task(f"{self.step}: {key}", total=total, note="")
            self._tasks[key] = task_id
        elif inc_total:
            current = self._progress.tasks[self._tasks[key]].total or 0
            self._progress.update(task_id, total=current + inc_total)
        self._progress.update(task_id, advance=inc, note=f"[{message}]" if message else "")

    def _start(self, step: str) -> None:
        self._tasks = {}
        self._progress = Progress(
            TextColumn("{task.description}"),
            TextColumn("{task.completed:>12,.0f}"),
            TextColumn("{task.fields[note]}"),
            RateColumn(),
            TimeElapsedColumn(),
            console=self.console,
            refresh_per_second=self.refresh_per_second,
        )
        self._progress.start()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress = None
        self._tasks = {}


class IntervalLogCollector(LogCollector):
    """dlt's ``LogCollector``, but the first block of a step comes after one interval, not at once:
    a step shorter than the interval logs only its summary when it ends."""

    def _start(self, step: str) -> None:
        super()._start(step)
        self.last_log_time = self._clock()


def progress_collector(stream: TextIO | None = None) -> Collector:
    """The collector for a run whose progress goes to ``stream`` (default: standard error)."""
    stream = stream or sys.stderr
    if stream.isatty():
        return RichCollector(Console(file=stream))
    return IntervalLogCollector(log_period=PROGRESS_LOG_SECONDS, logger=PROGRESS_LOGGER)
