"""What running each flow run in its own commit's environment adds to the run's start.

    uv run python -m benchmarks.run_environment            # warm cache, and the worker's own env
    uv run python -m benchmarks.run_environment --cold     # also with an empty uv cache (downloads)

A flow run of ``prefect.yaml`` clones its commit and starts with ``uv run --no-default-groups --project
<clone>`` (``UV_FROZEN=1``), which builds ``<clone>/.venv`` from uv's cache, then imports the flow. This
times that start (environment, then ``import`` of a flow module and Prefect's engine) in a fresh clone
of HEAD, against the same import in the worker's pre-built environment, one after another in one
invocation. Python's own settings (``PYTHONDONTWRITEBYTECODE``) are left as the machine has them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
IMPORT = "import flows.products, prefect.flow_engine"


def timed(command: list[str], cwd: Path, **env: str) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env={**os.environ, **env}, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - started


def clone(into: Path) -> Path:
    target = into / "data-pipelines"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(target)], check=True, timeout=300)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="also start with an empty uv cache")
    args = parser.parse_args()
    uv_run = ["uv", "run", "--no-default-groups", "--project"]
    cases = [("warm cache", {}), ("warm cache, UV_COMPILE_BYTECODE=1", {"UV_COMPILE_BYTECODE": "1"})]
    with tempfile.TemporaryDirectory() as tmp:
        worker = timed([sys.executable, "-c", IMPORT], REPO_ROOT)
        print(f"worker's pre-built environment: import {worker:.1f} s")
        if args.cold:
            cases.append(("cold cache", {"UV_CACHE_DIR": str(Path(tmp) / "uv-cache")}))
        for n, (name, env) in enumerate(cases):
            project = clone(Path(tmp) / str(n))
            sync = timed([*uv_run[:-1], "--frozen", "--project", str(project), "true"], project, **env)
            first = timed([*uv_run, str(project), "python", "-c", IMPORT], project, UV_FROZEN="1", **env)
            again = timed([*uv_run, str(project), "python", "-c", IMPORT], project, UV_FROZEN="1", **env)
            print(
                f"commit's own environment, {name}: build {sync:.1f} s, then import {first:.1f} s"
                f" (a second run in the same clone: {again:.1f} s)"
            )


if __name__ == "__main__":
    main()
