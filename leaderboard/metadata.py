"""Entry metadata: a small JSON object a write stores with its entry (a car, a character, a
replay id), answered as ``"metadata"`` in every entry.

It travels and is stored as its compact encoding (no spaces, UTF-8, keys in the order sent):
a hash field ``meta`` in Redis, a stream field ``m`` on write events, a ``json`` column in
Postgres (``json``, not ``jsonb``, keeps the text exactly as sent). No metadata is the empty
string everywhere ("" in Redis and in events, NULL in Postgres) and ``{}`` in answers.
"""

from __future__ import annotations

import json
from typing import Any

MAX_BYTES = 512


def encode(metadata: dict[str, Any] | None) -> str:
    """The compact encoding ('' for none or an empty object)."""
    if not metadata:
        return ""
    return json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def check_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A model validator: a JSON object of at most MAX_BYTES once encoded compactly."""
    try:
        size = len(encode(metadata).encode())
    except ValueError:  # NaN or infinity (a number too large for a double)
        raise ValueError("metadata numbers must be finite") from None
    if size > MAX_BYTES:
        raise ValueError(f"metadata is {size} bytes encoded compactly; at most {MAX_BYTES}")
    return metadata


def decode(text: str | bytes | None) -> dict[str, Any]:
    """The object of a stored encoding ({} for none)."""
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def valid_stored(text: str) -> bool:
    """Whether a stored encoding (e.g. a stream event's) is a JSON object within the limit."""
    if len(text.encode()) > MAX_BYTES:
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
