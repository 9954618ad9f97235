"""Pipelines: one module per source, each with ``create_pipeline()``, ``run()`` and a CLI."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from declarations import pipelines


def pipeline_module(name: str) -> ModuleType:
    """``pipelines.<name>``: its ``create_pipeline()`` and ``run()`` (a :class:`KeyError` if undeclared)."""
    if name not in pipelines():
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(pipelines())}")
    return importlib.import_module(f"pipelines.{name}")


def source_checks(name: str) -> list[Any]:
    """The checks a pipeline makes of its source (``source_checks()`` in ``pipelines/<name>.py``, when
    it has one: products' replication slot), as :class:`utils.checks.CheckResult`; never raises."""
    hook = getattr(pipeline_module(name), "source_checks", None)
    return list(hook()) if hook is not None else []
