"""Developer and operator tools: never imported by runtime code."""
