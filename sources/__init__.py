"""Sources: pure dlt sources, one package per provider. No Prefect, no destinations."""
