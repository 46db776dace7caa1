"""Helpers for tests of readable results."""

from __future__ import annotations

from typing import Any

__all__ = ["blobs"]


def blobs(value: Any) -> list[Any]:
    """Every ``__type__`` object left anywhere in ``value`` (a readable result has none)."""
    if isinstance(value, dict):
        found = [value] if "__type__" in value else []
        return found + [b for item in value.values() for b in blobs(item)]
    if isinstance(value, list):
        return [b for item in value for b in blobs(item)]
    return []
