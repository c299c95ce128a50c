"""What both HTTP servers (the bridge's API and the sim's control API) check before they answer.

Pure: header values in, a decision out. An empty expected token (a token file cut short by a crash)
must match nothing, not an empty `Authorization: Bearer` header.
"""

from __future__ import annotations

import hmac


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
