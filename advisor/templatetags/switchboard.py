"""Template filters that show numbers the way the vocabulary writes them."""

from __future__ import annotations

from typing import Any

from django import template

from advisor import vocabulary

register = template.Library()


@register.filter
def size(value: Any) -> str:
    """A byte count as a person reads it, exact where it is a clean unit: "16 MiB"."""
    try:
        return vocabulary.format_exact_bytes(int(value))
    except (TypeError, ValueError, OverflowError):
        return str(value)
