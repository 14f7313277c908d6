"""The data error type, in its own module so that every part of ``core.data`` can raise it."""

from __future__ import annotations


class DataError(ValueError):
    """A data file is missing, unreadable or of the wrong shape or values."""
