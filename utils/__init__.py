"""Shared runtime machinery: destinations, the pipeline runner, HTTP helpers, orchestration and secrets."""
