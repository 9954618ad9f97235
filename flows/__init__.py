"""Flows: Prefect flows and tasks, thin wrappers over ``pipelines/`` and ``utils/orchestration.py``."""
