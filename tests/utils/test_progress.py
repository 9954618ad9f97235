"""Progress of long runs: live lines on a terminal at least once a second, plain log lines elsewhere."""

from __future__ import annotations

import io
import itertools
import logging
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.runtime.collector import LogCollector

from tests.fakes.frankfurter import FakeFrankfurter
from tests.fixtures.warehouse import Warehouse
from utils import progress
from utils.destinations import get_destination
from utils.live_progress import RichCollector
from utils.progress import PROGRESS_LOG_SECONDS, progress_collector
from utils.runner import run_pipeline

REPO_ROOT = Path(__file__).resolve().parents[2]
BACKFILL_5_YEARS = ("--start-date", "2021-01-01", "--end-date", "2025-12-31")


def slow_rows(seconds: float, batches: int = 6) -> Any:
    """A resource yielding a batch of rows every ``seconds / batches`` seconds."""

    @dlt.resource(name="ticks", write_disposition="append")
    def ticks() -> Iterator[list[dict[str, int]]]:
        for batch in range(batches):
            time.sleep(seconds / batches)
            yield [{"batch": batch, "n": i} for i in range(100)]

    return ticks


def test_without_a_terminal_the_collector_is_a_log_at_an_interval() -> None:
    collector = progress_collector(io.StringIO())
    assert isinstance(collector, LogCollector)
    assert collector.log_period == PROGRESS_LOG_SECONDS >= 5
    assert collector.logger is progress.PROGRESS_LOGGER


def test_without_a_terminal_rich_is_not_loaded() -> None:
    """Workers, CI and pipes never draw live lines, so they do not pay for importing rich."""
    code = (
        "import io, sys; from utils.progress import progress_collector; progress_collector(io.StringIO()); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert found.stdout.strip() == "[]"


def test_on_a_terminal_the_collector_redraws_at_least_once_a_second() -> None:
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w") as terminal:
            collector = progress_collector(terminal)
            assert isinstance(collector, RichCollector)
            assert collector.refresh_per_second >= 1
    finally:
        os.close(master)


def test_without_a_terminal_a_run_logs_plain_lines_at_the_interval(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress, "PROGRESS_LOG_SECONDS", 0.5)
    caplog.set_level(logging.INFO, logger="data_pipelines.progress")
    pipeline = dlt.pipeline(pipeline_name="progress_test", destination=get_destination(), dataset_name="p")
    report = run_pipeline(pipeline, lambda: slow_rows(3.0))
    assert report.rows_by_table == {"ticks": 600}
    records = [r for r in caplog.records if r.name == "data_pipelines.progress"]
    extract = [r for r in records if "Extract" in r.getMessage() and "ticks:" in r.getMessage()]
    assert len(extract) >= 4, [r.getMessage() for r in records]  # about 3 s at one block per 0.5 s
    # Records less than 50 ms apart belong to one block (dlt may write a block's records in the same
    # instant); the interval is between blocks, and the last block is the step's own summary.
    starts = [extract[0].created]
    for record in extract[1:]:
        if record.created - starts[-1] >= 0.05:
            starts.append(record.created)
    gaps = [b - a for a, b in itertools.pairwise(starts)][:-1]
    assert len(gaps) >= 2 and all(gap >= 0.45 for gap in gaps), gaps
    assert any("ticks: 600" in r.getMessage() and "Rate:" in r.getMessage() for r in extract)
    text = "\n".join(r.getMessage() for r in records)
    assert "\r" not in text and "\x1b" not in text


@pytest.mark.slow
def test_a_five_year_backfill_on_a_terminal_updates_at_least_once_a_second(
    frankfurter: FakeFrankfurter, warehouse: Warehouse
) -> None:
    frankfurter.latency = 0.7  # each yearly request waits: the display must keep moving meanwhile
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.exchange_rates", "--backfill", *BACKFILL_5_YEARS],
        cwd=REPO_ROOT,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    chunks: list[tuple[float, bytes]] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: the process has exited
                break
            if not data:
                break
            chunks.append((time.monotonic(), data))
    finally:
        os.close(master)
        returncode = process.wait(timeout=60)
    output = b"".join(data for _, data in chunks).decode(errors="replace")
    assert returncode == 0, output
    live = [at for at, data in chunks if b"Extract" in data]
    assert live, output
    during = [at for at, _ in chunks if live[0] <= at <= live[-1]]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert live[-1] - live[0] >= 2.0, "the extract step should take several seconds with latency"
    assert max(gaps) <= 1.0, gaps
    assert "rates" in output and "/s" in output
    assert len(frankfurter.requests) >= 5
