"""Raw HTTP/1.1 over a socket, for tests of what http.client will not send: bad Content-Length
values, bodies on GET, pipelined requests. Every answer on the connection is read until the
server closes it, so a request smuggled inside a body shows up as an extra answer."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """One request's bytes, headers exactly as given (no Content-Length added)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(address: tuple[str, int], data: bytes, timeout: float = 10.0) -> list[RawResponse]:
    """Send `data` (from a thread: the server may stop reading it) and return every answer until the
    server closes the connection; TimeoutError if it neither answers nor closes within `timeout`."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sender = threading.Thread(target=_send, args=(sock, data), daemon=True)
        sender.start()
        answers = []
        with sock.makefile("rb") as stream:
            while (answer := _read_response(stream)) is not None:
                answers.append(answer)
        sender.join(timeout)
        return answers


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:  # the server refused the rest and closed: what some tests expect
        pass


def _read_response(stream: BinaryIO) -> RawResponse | None:
    """One answer (status line, headers, Content-Length body), or None at a clean end of stream."""
    try:
        line = stream.readline()
    except ConnectionResetError:
        return None
    if not line:
        return None
    status = int(line.split()[1])
    headers: dict[str, str] = {}
    while (header := stream.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, stream.read(int(headers.get("content-length", "0"))))
