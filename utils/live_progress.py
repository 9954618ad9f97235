"""Live progress on a terminal: one line per table, redrawn by rich several times a second.

:func:`utils.progress.progress_collector` picks this collector when standard error is a terminal and
imports this module only then, so runs without a terminal (workers, CI, pipes) do not load rich.
"""

from __future__ import annotations

from typing import Any, Final, TextIO

from dlt.common.runtime.collector import Collector
from rich.console import Console
from rich.progress import Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

REFRESH_PER_SECOND: Final = 4.0
"""Redraws per second, whether or not rows arrived."""


class RateColumn(ProgressColumn):
    """Rows per second since the counter started (rich's own ``speed`` needs a full sample window)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.0f}/s", style="progress.data.speed")


class RichCollector(Collector):
    """A dlt collector drawing one live line per counter (table, files, jobs) with rich."""

    def __init__(self, stream: TextIO | None = None, refresh_per_second: float = REFRESH_PER_SECOND):
        self.console = Console(file=stream) if stream is not None else Console(stderr=True)
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
