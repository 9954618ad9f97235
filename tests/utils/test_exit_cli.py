"""How a pipeline's CLI process ends: its exit code, its output and its exit handlers, without the
interpreter's teardown (``utils.runner.exit_cli``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.postgres import ProductsDb
from tests.fixtures.warehouse import Warehouse

REPO_ROOT = Path(__file__).resolve().parents[2]

ENDING = """
import atexit, sys, threading, time
from utils.runner import exit_cli

log = sys.argv[1]
atexit.register(lambda: open(log, "a").write("atexit handler ran\\n"))
sys.stdout.write("written, not yet flushed")
if sys.argv[2] == "with a thread":
    threading.Thread(target=lambda: (time.sleep(0.3), open(log, "a").write("thread finished\\n"))).start()
exit_cli(3)
"""


@pytest.mark.parametrize("threads", ["alone", "with a thread"])
def test_exit_handlers_run_output_is_flushed_and_threads_are_waited_for(tmp_path: Path, threads: str) -> None:
    log = tmp_path / "log"
    ended = subprocess.run(
        [sys.executable, "-c", ENDING, str(log), threads], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert ended.returncode == 3, ended.stderr
    assert ended.stdout == "written, not yet flushed"
    expected = (
        ["thread finished", "atexit handler ran"] if threads == "with a thread" else ["atexit handler ran"]
    )
    assert log.read_text().splitlines() == expected


def test_a_products_run_ends_with_its_code_and_nothing_after_the_report(
    products_db: ProductsDb, warehouse: Warehouse
) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "pipelines.products"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.rstrip().endswith("| products | 20 |"), ok.stdout
    assert "leak" not in ok.stderr and "WARNING" not in ok.stderr, ok.stderr
    assert warehouse.scalar("select count(*) from products.products") == 20
    assert not warehouse.path.with_name(warehouse.path.name + ".wal").exists()  # checkpointed and closed

    products_db.execute("drop table public.products")
    failed = subprocess.run(
        [sys.executable, "-m", "pipelines.products"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "error:" in failed.stderr and "products" in failed.stderr
