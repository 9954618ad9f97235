"""Pipelines: one module per source, each with ``create_pipeline()``, ``run()`` and a CLI."""

from __future__ import annotations

import importlib
from types import ModuleType

from declarations import pipelines


def pipeline_module(name: str) -> ModuleType:
    """``pipelines.<name>``: its ``create_pipeline()`` and ``run()`` (a :class:`KeyError` if undeclared)."""
    if name not in pipelines():
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(pipelines())}")
    return importlib.import_module(f"pipelines.{name}")
