"""The MQTT link's message sink: each message routed, journaled with what became of it, and a rejected
one counted and logged.

It runs on paho's network thread, which answers in its callback for latency (daemon.py). A flood of
bad input must not flood the system journal (journald would then drop the bridge's other lines): one
line per bad message, up to BAD_INPUT_BURST at once and one a second after that; the rest are counted
here and summed up, one line per kind, by the daemon's housekeeping (`log_unlogged`).
"""

from __future__ import annotations

import logging
import threading
import time

import paho.mqtt.client as mqtt

from ..core.journal_entry import Direction, JournalEntry, NoAnswer
from ..core.rate_limit import RateLimiter
from ..messages import Handled, Rejected, Router, raw_text
from .journal import Journal, parsed_cost

log = logging.getLogger("josev_bridge.daemon")  # the daemon's lines, under the name they always had

BAD_INPUT_BURST = 20.0  # bad-message log lines at once, then one a second (a summary for the rest)


class MqttIntake:
    """Every message of the subscribed topics: its topic's router answers it, the journal keeps it."""

    def __init__(self, routers: dict[str, Router], journal: Journal | None) -> None:
        self.routers = routers
        self.journal = journal
        self.rejected: dict[str, int] = {}  # by kind (status: rejected_messages)
        self.last_request_at = 0.0  # time.monotonic() of the last message (export sends in the quiet)
        self._bad_input_log = RateLimiter(rate=1.0, burst=BAD_INPUT_BURST)
        self._unlogged: dict[str, int] = {}
        self._unlogged_lock = threading.Lock()

    def on_message(self, message: mqtt.MQTTMessage) -> None:
        router = self.routers.get(message.topic)
        if router is None:
            log.debug("message on unexpected topic %s ignored", message.topic)
            return
        received_us, t0 = time.time_ns() // 1000, time.perf_counter_ns()
        self.last_request_at = time.monotonic()
        payload = bytes(message.payload)  # paho's type admits a bytearray; bytes() of bytes is the same object
        result = router.route(payload)
        if self.journal is not None:
            latency_us = (time.perf_counter_ns() - t0) // 1000
            entry = _journal_entry(received_us, message, result, latency_us)
            self.journal.record(entry, _payload_cost(entry.payload, payload))
        if isinstance(result, Rejected):
            self.rejected[result.kind] = self.rejected.get(result.kind, 0) + 1
            about = f" (id={result.id}, name={result.name})" if result.id or result.name else ""
            if result.kind == "ignored":
                log.debug("ignoring message on %s%s: %s", message.topic, about, result.detail)
            elif self._bad_input_log.allow(result.kind, time.monotonic()):
                log.warning("dropping %s message on %s%s: %s", result.kind.replace("_", " "), message.topic,
                            about, result.detail)
            else:
                with self._unlogged_lock:  # counted here (paho's thread), summed up by housekeeping
                    self._unlogged[result.kind] = self._unlogged.get(result.kind, 0) + 1

    def log_unlogged(self) -> None:
        """The bad messages the rate limit kept out of the log, as one summary line per kind."""
        with self._unlogged_lock:
            unlogged, self._unlogged = self._unlogged, {}
        for kind, count in unlogged.items():
            log.warning("dropped %d more %s message(s) without a log line each (counted in status: "
                        "rejected_messages; journaled as InvalidMessage)", count, kind.replace("_", " "))


def _journal_entry(received_us: int, message: mqtt.MQTTMessage, result: Handled | Rejected,
                   latency_us: int) -> JournalEntry:
    """A request and what became of it: answered only when the link took the answer."""
    if isinstance(result, Handled):
        m, outcome = result.message, result.outcome
        if outcome.sent:
            return JournalEntry(received_us, Direction.IN, m.name, message.topic, m.id, m.data, outcome.response,
                                latency_us, note=outcome.note)
        return JournalEntry(received_us, Direction.IN, m.name, message.topic, m.id, m.data,
                            NoAnswer(outcome.no_answer), None, note=outcome.note)
    why = NoAnswer.IGNORED if result.kind == "ignored" else NoAnswer.INVALID_MESSAGE
    payload = result.data
    if payload is None and result.kind in ("malformed_json", "not_an_envelope", "oversized"):
        payload = raw_text(message.payload)
    return JournalEntry(received_us, Direction.IN, result.name or "unknown", message.topic, result.id, payload,
                        why, note=result.detail)


def _payload_cost(kept: object, raw: bytes) -> int:
    """What the journaled payload holds in memory: the raw text kept for an unusable message, or the
    parsed `data` (estimated from the message's text, which holds it)."""
    if kept is None:
        return 0
    if isinstance(kept, str):
        return len(kept)
    return parsed_cost(raw)
