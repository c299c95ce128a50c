"""sd_notify for the daemon: readiness, reload, stop, status text and watchdog pings.

Writes the datagram to ``$NOTIFY_SOCKET`` itself (a path, or an abstract socket written ``@name``),
without blocking. systemd-python's ``systemd.daemon.notify`` is available with ``use_library=True``
but is not the default: it blocks in C *while holding the GIL* when the manager's queue is full,
which froze every thread of the bridge for seconds in our tests (MQTT answers and serial reads
included). Without NOTIFY_SOCKET (not started by systemd, or a unit that is not Type=notify) every
call is a no-op.

No method raises: a failed notification is logged at debug level and reported as ``False``. A lost
READY=1 or WATCHDOG=1 is systemd's to act on (start timeout, watchdog restart); it must not also
take the daemon down from inside.

NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are read at each call, not cached, so tests can
change them and a re-exec'd process sees its own environment.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("josev_bridge.systemd")

try:  # systemd-python: optional (the "systemd" extra); needs libsystemd at run time
    from systemd import daemon as _sd_daemon
except Exception:  # ImportError, or a broken install (e.g. libsystemd missing)
    _sd_daemon = None


class SystemdNotifier:
    """Send sd_notify(3) messages to the service manager.

    ``use_library``: True to use systemd-python (when importable); False, the default, to write the
    datagram directly and never block (see the module docstring for why).
    """

    def __init__(self, use_library: bool = False) -> None:
        self._library = _sd_daemon if use_library else None
        if use_library and self._library is None:
            log.debug("systemd-python is not importable; writing to NOTIFY_SOCKET directly")

    @property
    def uses_library(self) -> bool:
        return self._library is not None

    @staticmethod
    def enabled() -> bool:
        """True when started by systemd with a notify socket (Type=notify)."""
        return bool(os.environ.get("NOTIFY_SOCKET"))

    # --- the messages ------------------------------------------------------------------------------

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete: READY=1, optionally with a status line."""
        lines = ["READY=1"]
        if status is not None:
            lines.append("STATUS=" + _one_line(status))
        return self.notify(*lines)

    def reloading(self) -> bool:
        """A reload (SIGHUP) has begun; send ready() when it is done.

        MONOTONIC_USEC ties this message to the reload that systemd >= 253 is waiting for
        (Type=notify-reload); systemd 252 (Debian 12) ignores the field. Sending it always keeps
        the daemon correct on both.
        """
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> bool:
        """Shutdown has begun."""
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        """Free-form status shown by `systemctl status` (one line)."""
        return self.notify("STATUS=" + _one_line(text))

    def watchdog(self) -> bool:
        """Watchdog keep-alive. Call only after checking the daemon's own health."""
        return self.notify("WATCHDOG=1")

    @staticmethod
    def watchdog_interval() -> float | None:
        """Seconds between watchdog pings: half of WATCHDOG_USEC, or None when no watchdog is
        configured for this process (unset/invalid WATCHDOG_USEC, or WATCHDOG_PID naming another
        process, e.g. a parent that exported its environment to us)."""
        usec = os.environ.get("WATCHDOG_USEC")
        if not usec:
            return None
        try:
            value = int(usec)
        except ValueError:
            log.debug("ignoring invalid WATCHDOG_USEC=%r", usec)
            return None
        if value <= 0:
            return None
        pid = os.environ.get("WATCHDOG_PID")
        if pid:
            try:
                if int(pid) != os.getpid():
                    return None
            except ValueError:
                log.debug("ignoring invalid WATCHDOG_PID=%r", pid)
                return None
        return value / 1_000_000 / 2

    # --- transport -----------------------------------------------------------------------------------

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one message. True if it was sent; False if there is no notify socket
        or sending failed (logged at debug level). Never raises."""
        message = "\n".join(lines)
        try:
            if not os.environ.get("NOTIFY_SOCKET"):
                return False
            if self._library is not None:
                return bool(self._library.notify(message))
            return _send_datagram(message)
        except Exception as exc:  # noqa: BLE001 - a notify failure must never take the daemon down
            log.debug("sd_notify %r failed: %s", message, exc)
            return False


def _one_line(text: str) -> str:
    # The protocol is newline-separated assignments: a newline in a status would end it early.
    return " ".join(str(text).splitlines())


def _send_datagram(message: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    elif not address.startswith("/"):
        # e.g. "vsock:..." (systemd >= 254 for VMs); not used for services on a board.
        log.debug("unsupported NOTIFY_SOCKET address %r", address)
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
        sock.connect(address)
        sock.send(message.encode("utf-8"))  # BlockingIOError when the manager is not reading: dropped, logged
    return True
