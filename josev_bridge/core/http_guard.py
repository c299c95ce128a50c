"""What both HTTP servers (the bridge's API and the sim's control API) check before they answer.

Pure: header values in, a decision out. Two holes are closed here once, for both:

- an empty expected token (a token file cut short by a crash) must match nothing, not an empty
  `Authorization: Bearer` header;
- a request body whose end cannot be found (a bad or negative Content-Length, a Transfer-Encoding
  http.server does not decode) or that is too large to read must be refused and its connection
  closed: whatever of it is left in the stream would be parsed as the next request on a keep-alive
  connection.
"""

from __future__ import annotations

import hmac
from typing import Protocol


class Headers(Protocol):
    """The part of http.server's `self.headers` (an email.message.Message) used here."""

    def get_all(self, name: str, failobj: None = None) -> list[str] | None: ...


class BodyRefused(Exception):
    """The request's body cannot be read safely: answer `status` with this message and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def bearer_matches(header: str | None, expected: str) -> bool:
    """True only for `Bearer <expected>`, compared in constant time.

    An empty or whitespace-only expected token matches nothing (fail closed), so a server handed
    one by mistake refuses every request instead of accepting `Authorization: Bearer `.
    """
    want = expected.strip()
    scheme, _, given = (header or "").strip().partition(" ")
    if not want or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), want.encode())


def body_length(headers: Headers, limit: int) -> int:
    """The request body's length in bytes (0 without one), or BodyRefused.

    Only plain ASCII digits are a length: int() would also take "-5", "+5", " 5" and "1_0".
    Two different Content-Length values, or any Transfer-Encoding, leave the body's end
    ambiguous (request smuggling): refused.
    """
    if headers.get_all("Transfer-Encoding"):
        raise BodyRefused(411, "Transfer-Encoding is not supported; send the body with a Content-Length")
    values = {v.strip() for v in headers.get_all("Content-Length") or []}
    if not values:
        return 0
    if len(values) > 1:
        raise BodyRefused(400, "conflicting Content-Length headers")
    (value,) = values
    if not (value.isascii() and value.isdigit()):
        raise BodyRefused(400, "Content-Length must be a non-negative integer")
    length = int(value)
    if length > limit:
        raise BodyRefused(413, f"request body larger than {limit} bytes")
    return length
