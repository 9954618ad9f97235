"""fakesnow, the Snowflake emulator the test suite loads into, and the patches dlt needs from it.

Only tests import this package. See :mod:`tests.snowflake_emulator.patches` for what is patched and why.
"""
