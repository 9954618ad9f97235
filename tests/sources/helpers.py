"""Helpers shared by the source tests."""

from __future__ import annotations

import pytest
from dlt.extract.exceptions import ResourceExtractionError

from utils.http import ApiError


def api_error(exc: pytest.ExceptionInfo[BaseException]) -> ApiError:
    """The source's own :class:`ApiError`, unwrapped from dlt's extraction error."""
    cause = exc.value.__cause__ if isinstance(exc.value, ResourceExtractionError) else exc.value
    assert isinstance(cause, ApiError), f"expected ApiError, got {exc.value!r}"
    return cause
