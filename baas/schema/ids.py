"""Record ids: the canonical form of an id a client sends, and new time-ordered ids."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from baas.schema.fields import FieldValueError, parse_uuid


def record_id(value: Any) -> str | None:
    """The canonical id from a path or body, or None when it cannot be an id."""
    try:
        return parse_uuid(value)
    except FieldValueError:
        return None


def new_record_id() -> str:
    """A time-ordered UUID (version 7), as the database would give one."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10))
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 66 & 0xFFF) << 64
    value |= 0b10 << 62 | (rand & (2**62 - 1))
    return str(uuid.UUID(int=value))
