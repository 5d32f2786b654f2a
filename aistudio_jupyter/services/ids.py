"""Opaque, time-ordered ids: a kind prefix, milliseconds since the epoch, 80 random bits."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _b32(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 32)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    return f"{prefix}_{_b32(int(time.time() * 1000), 9)}{_b32(secrets.randbits(80), 16)}"
