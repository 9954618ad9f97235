"""Pipelines: one module per source, each with ``create_pipeline()``, ``run()`` and a CLI."""
