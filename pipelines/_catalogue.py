"""Every pipeline and what an operator needs to know about it: owner, schedule, dataset, freshness bound.

``FRESHNESS_BOUNDS`` is the list of pipelines: how old each one's newest successful load may be before
someone should look. A bound is the schedule's interval plus room for a late run and its retries.
The rest is read from where it is already declared, never written twice: the owner from the source
package's docstring (``Owner: ...``), the schedules from ``prefect.yaml`` (deployments tagged with the
pipeline's name), the destination and dataset from the pipeline's ``create_pipeline()``.
``flows/freshness.py`` and ``python -m pipelines status`` read this module; modules here whose name
starts with ``_`` are not pipelines.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import yaml

FRESHNESS_BOUNDS: Final[dict[str, dt.timedelta]] = {
    # weekly on Mondays: a missed Monday is noticed by Tuesday
    "currencies": dt.timedelta(days=8),
    # working days at 16:30 Berlin: Friday's rates must survive a weekend and a Monday holiday
    "exchange_rates": dt.timedelta(days=4, hours=2),
    # daily at 05:30 London: one missed run plus retries
    "hubspot": dt.timedelta(hours=30),
    "products": dt.timedelta(hours=30),
}

PREFECT_YAML: Final = Path(__file__).resolve().parent.parent / "prefect.yaml"
OWNER_LINE: Final = re.compile(r"^Owner:\s*(?P<owner>.+?)\s*$", re.MULTILINE)


def pipelines() -> list[str]:
    """Every pipeline's name, sorted."""
    return sorted(FRESHNESS_BOUNDS)


def pipeline_module(name: str) -> ModuleType:
    """``pipelines.<name>``: its ``create_pipeline()`` and ``run()``."""
    if name not in FRESHNESS_BOUNDS:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(pipelines())}")
    return importlib.import_module(f"pipelines.{name}")


def owner(name: str) -> str:
    """The ``Owner:`` line of ``sources/<name>/__init__.py``'s docstring, or ``-``."""
    try:
        doc = importlib.import_module(f"sources.{name}").__doc__ or ""
    except ImportError:
        return "-"
    match = OWNER_LINE.search(doc)
    return match["owner"].rstrip(".") if match else "-"


@cache
def _deployments() -> list[dict[str, Any]]:
    if not PREFECT_YAML.exists():
        return []
    loaded = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8")) or {}
    return list(loaded.get("deployments") or [])


def schedules(name: str) -> list[str]:
    """``<cron> <time zone>`` of each active schedule of the deployments tagged ``name``."""
    found = []
    for deployment in _deployments():
        if name not in (deployment.get("tags") or []):
            continue
        for schedule in deployment.get("schedules") or []:
            if schedule.get("active", True) and schedule.get("cron"):
                found.append(f"{schedule['cron']} {schedule.get('timezone', 'UTC')}")
    return found
