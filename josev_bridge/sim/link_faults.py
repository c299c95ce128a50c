"""What the sim does to the bytes on the line when a test asks for a link fault."""

from __future__ import annotations

import random
import secrets


class LinkConflict(RuntimeError):
    """A link fault that cannot be applied in the link's current state (e.g. it is unplugged): 409."""


def corrupt(frame: bytes) -> bytes:
    """Flip bits in the middle of an encoded frame, never producing 0x00: the CRC check must fail."""
    data = bytearray(frame)
    i = len(data) // 2
    data[i] = data[i] ^ 0x5A or 0x01
    return bytes(data)


def random_bytes(count: int, seed: int | None = None) -> tuple[bytes, int]:
    """`count` bytes of noise and the seed that reproduces them (a random one unless given)."""
    seed = secrets.randbelow(2**32) if seed is None else seed
    return random.Random(seed).randbytes(count), seed
