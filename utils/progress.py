"""Progress of a running pipeline: live on a terminal, a log line at an interval everywhere else.

dlt reports progress through its collectors (``dlt.common.runtime.collector``): every extract,
normalise and load step calls ``update(name, inc, total)`` with rows per table, files and jobs.
:func:`progress_collector` picks the collector for where the run is:

- **a terminal**: ``utils.live_progress.RichCollector``, one live line per table with rows, rows per
  second and elapsed time, redrawn by rich's own refresh thread several times a second, so the display
  keeps moving while a source waits for its next page (dlt's tqdm and enlighten adapters redraw only
  when rows arrive; rich ships with Prefect already);
- **no terminal** (CI, Prefect workers, pipes): dlt's ``LogCollector`` writing one block of plain
  lines (rows, rate, elapsed per table; memory and CPU) every :data:`PROGRESS_LOG_SECONDS` and at the
  end of each step to the ``data_pipelines.progress`` logger, which flows route into the Prefect run
  log; never a control character.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Final, TextIO

from dlt.common.runtime.collector import Collector, LogCollector

PROGRESS_LOG_SECONDS: float = 15.0
"""Without a terminal: seconds between progress log blocks (and one at the end of every step)."""
PROGRESS_LOGGER: Final = logging.getLogger("data_pipelines.progress")


class IntervalLogCollector(LogCollector):
    """dlt's ``LogCollector``, but the first block of a step comes after one interval, not at once:
    a step shorter than the interval logs only its summary when it ends.

    ``_start`` is the hook every dlt collector implements; ``last_log_time`` is the collector's public
    attribute, in wall-clock seconds as dlt's own (private) clock reads them."""

    def _start(self, step: str) -> None:
        super()._start(step)
        self.last_log_time = time.time()


def progress_collector(stream: TextIO | None = None) -> Collector:
    """The collector for a run whose progress goes to ``stream`` (default: standard error)."""
    stream = stream or sys.stderr
    if stream.isatty():
        from utils.live_progress import RichCollector  # rich is imported only for a terminal

        return RichCollector(stream)
    return IntervalLogCollector(log_period=PROGRESS_LOG_SECONDS, logger=PROGRESS_LOGGER)
