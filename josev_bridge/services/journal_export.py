"""Store-and-forward export of journal rows to the fleet's MQTT broker (docs/journal-export.md).

The outbox is the journal table itself: rows with an id above the *watermark* (cursor "export" in
the journal's own SQLite file) are pending. One `export` thread publishes them in id order at
QoS 1 with at most `max_inflight` unacknowledged, and moves the watermark only over the contiguous
prefix of PUBACKed rows; it persists the watermark at most every PERSIST_INTERVAL seconds or
PERSIST_ROWS rows, at the end of every connection and at stop. A crash therefore re-sends at most
what was acknowledged since the last save (at least once); a row is never skipped, except one that
retention deleted before it was acknowledged: that one is lost to export, counted and logged.

**One paho client per connection.** paho 2.x keeps unacknowledged QoS 1 messages in its
`_out_messages` across a reconnect and re-sends them (DUP set, in mid order) on the new connection,
whatever the clean-session flag (`Client._messages_reconnect_reset_out` and `_handle_connack`),
and `loop_forever` reconnects by itself unless `reconnect_on_failure` is false. Mixing that with
our own restart from the watermark would interleave paho's re-sends with ours. So each connection
is a fresh client built with `reconnect_on_failure=False` and clean start / clean session: when
the connection ends its network thread ends, the client and everything it had in flight are
dropped, and the next connection starts again at watermark + 1, in id order, after a backoff.

Why order of first arrival holds: within one connection rows are published in increasing id order
on one TCP stream and the broker takes them in that order, so what it got is a prefix of what was
sent; the next connection starts at or below the first row not acknowledged. Duplicates are
possible (a PUBACK lost with the connection), gaps are not.

Threads: paho's network thread (one per connection) only appends to a deque and sets an event in
its callbacks (never blocks, never raises); the `export` thread does everything else, including
all SQLite access through its own read/write connection (the journal thread has another; WAL lets
both work). It wakes when the journal commits (`notify`, a Journal listener), on every callback,
and at least every POLL_INTERVAL seconds.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..adapters.journal_store import JournalStore
from ..adapters.mqtt_link import ClientOptions, new_client, tls_context
from ..config import ExportConfig, read_secret
from ..core.export_window import AckWindow, RowBudget
from ..core.journal_entry import to_row

log = logging.getLogger("josev_bridge.export")

CURSOR = "export"  # name of the watermark in the journal's `cursors` table
POLL_INTERVAL = 1.0  # seconds: look for new rows even without a journal notification
PERSIST_INTERVAL = 0.5  # seconds between watermark saves while rows are being acknowledged
PERSIST_ROWS = 1000  # ... or after this many rows, whichever comes first
ACK_POLL = 0.05  # seconds: while rows are in flight, collect their acks at least this often
MAX_DEFERRAL = 1.0  # seconds export waits for a pause in the requests before it sends a burst anyway
STOP_DRAIN = 1.0  # seconds at stop for the rows in flight to be acknowledged (fewer re-sends next time)


@dataclass
class ExportCounters:
    published: int = 0  # PUBLISH packets handed to paho (re-sends after a reconnect included)
    acked: int = 0  # PUBACKs with a success reason code
    refused: int = 0  # PUBACKs with a failure reason code (MQTT 5): the row stays pending
    lost_to_retention: int = 0  # rows deleted by retention before they were acknowledged
    connections: int = 0  # successful CONNACKs
    connect_failures: int = 0
    store_errors: int = 0  # SQLite errors while reading rows or saving the watermark


class JournalExporter:
    """The `export` thread and its counters. `notify` is the Journal listener (any thread)."""

    def __init__(self, cfg: ExportConfig, journal_path: str | Path, *, identity: str, fleet_id: int,
                 client_id: str, topic: str) -> None:
        self._cfg = cfg
        self._identity = identity
        self._fleet_id = fleet_id
        self._client_id = client_id
        self.topic = topic
        # Read secrets and load certificates now, so a mistake stops the start with its name.
        self._password = read_secret(cfg.password_file, "[export] password_file") if cfg.password_file else None
        self._tls = _tls_context(cfg) if cfg.tls else None
        if cfg.username and not cfg.tls and cfg.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("export: [export] tls is false: the password for %s crosses the network in the clear",
                        cfg.host)
        self.store = JournalStore(journal_path)  # used by the export thread only, once started
        self.watermark = self.store.get_cursor(CURSOR)
        self.counters = ExportCounters()
        self.connected = False
        self.last_error: str | None = None
        self._saved_watermark = self.watermark
        self._saved_at = 0.0
        self._publish_properties: Properties | None = None
        self._highest_sent = self.watermark  # gaps above this are rows retention took before export
        self._lost_upto = self.watermark  # rows up to here that retention took are already counted
        self._notified_last_id = 0  # written by the journal thread only (notify)
        self._polled_last_id = 0  # written by the export thread only
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._events: deque[tuple] = deque()  # from paho's thread: ("connack", rc) / ("ack", mid, rc) / ("down", rc)
        self._refill_at = max(1, cfg.max_inflight // 2)  # acks that wake the thread; free slots that refill
        self._budget = RowBudget(cfg.max_rows_per_s)
        self.busy: Callable[[], bool] = lambda: False  # the daemon's "answering right now": export waits
        self._deferred_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="export", daemon=True)

    # -- any thread -------------------------------------------------------------------------------
    def notify(self, last_id: int) -> None:
        """Journal listener: rows up to `last_id` are committed. Cheap: the journal thread calls it."""
        self._notified_last_id = last_id
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect, save the watermark, close the store."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():  # e.g. blocked in a TCP or TLS connect; the saved watermark stands
            log.warning("export: still connecting after %g s at stop; left behind (rows not acknowledged "
                        "are sent again at the next start)", timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def status(self, last_id: int) -> dict:
        """The `export` section of status.json; `last_id` is the journal's newest row."""
        return {"broker": f"{self._cfg.host}:{self._cfg.port}", "topic": self.topic, "connected": self.connected,
                "watermark": self.watermark, "backlog": max(0, last_id - self.watermark),
                "last_error": self.last_error,
                **{k: v for k, v in vars(self.counters).items()}}

    # -- the export thread ------------------------------------------------------------------------
    def _run(self) -> None:
        delay = self._cfg.reconnect_min_delay
        try:
            while not self._stop.is_set():
                try:
                    healthy = self._connection()
                except Exception as exc:  # a bug or an unexpected error must not end the thread
                    log.exception("export: connection ended by an unexpected error")
                    self._error(f"{type(exc).__name__}: {exc}")
                    healthy = False
                self.connected = False
                self._save_watermark(force=True)
                # what was sent but never acknowledged is pending again: the next connection starts at
                # the watermark, and rows above it that retention deletes meanwhile are lost to export
                self._highest_sent = self.watermark
                if self._stop.is_set():
                    break
                if healthy:
                    delay = self._cfg.reconnect_min_delay
                log.debug("export: reconnecting in %.3g s", delay)
                self._wait_counting_losses(delay)
                delay = min(delay * 2, self._cfg.reconnect_max_delay)
        finally:
            self._save_watermark(force=True)
            self.store.close()

    def _connection(self) -> bool:
        """One connection from CONNECT to its end. True when it did its job (the backoff starts over)."""
        cfg = self._cfg
        self._events.clear()
        client, properties = self._client()
        try:
            if properties is not None:  # MQTT 5: clean start; 3.1.1 has clean_session=True in the client
                client.connect(cfg.host, cfg.port, cfg.keepalive, clean_start=True, properties=properties)
            else:
                client.connect(cfg.host, cfg.port, cfg.keepalive)
        except (OSError, ssl.SSLError) as exc:  # refused, unreachable, DNS, TLS handshake, timeout
            self.counters.connect_failures += 1
            self._error(f"cannot connect to {cfg.host}:{cfg.port}: {exc}")
            return False
        client.loop_start()
        try:
            return self._exchange(client)
        finally:
            self.connected = False
            try:
                client.disconnect()
            except Exception:  # already gone
                pass
            client.loop_stop()  # the network thread ends: no reconnect (reconnect_on_failure=False)

    def _exchange(self, client: mqtt.Client) -> bool:
        """Publish and collect PUBACKs until the connection ends (or stop). Same result as _connection."""
        cfg = self._cfg
        deadline = time.monotonic() + cfg.connect_timeout  # for the CONNACK; then for the drain at stop
        window = AckWindow()
        next_after = self.watermark  # publish rows with id > next_after
        last_poll = 0.0
        draining = False
        connected_at = None
        acked_before = self.counters.acked
        while True:
            ended, healthy = self._take_events(window)
            last = window.advance()
            if last is not None:
                self.watermark = last
            self._save_watermark()
            now = time.monotonic()
            if self.connected and connected_at is None:
                connected_at = now
            if ended:
                # Back to the shortest delay only after a connection that did its job: rows acknowledged,
                # or up for a while. A broker that accepts and drops at once gets the growing backoff.
                return healthy and connected_at is not None and (
                    self.counters.acked > acked_before or now - connected_at >= cfg.reconnect_max_delay)
            if self._stop.is_set():
                if not self.connected or not window:
                    return True
                if not draining:  # give what is in flight a moment to be acknowledged: fewer re-sends
                    draining, deadline = True, now + STOP_DRAIN
                if now >= deadline:
                    return True
            elif not self.connected:
                if now >= deadline:
                    self.counters.connect_failures += 1
                    self._error(f"no CONNACK from {cfg.host}:{cfg.port} within {cfg.connect_timeout:g} s")
                    return False
            else:
                if now - last_poll >= POLL_INTERVAL:
                    last_poll = now
                    self._polled_last_id = self._read(self.store.last_id, self._polled_last_id)
                room = min(cfg.max_inflight - len(window), self._budget.take_up_to(cfg.max_inflight, now))
                if room and self._defer(now):
                    room = 0
                # refill in batches (one query, one burst) once half the window is free
                if (room >= self._refill_at or (room and not window)) and \
                        max(self._notified_last_id, self._polled_last_id) > next_after:
                    rows = self._read(partial(self.store.after_id, next_after, room), [])
                    self._budget.spend(len(rows))
                    for stored in rows:
                        self._count_gap(next_after, stored.id)
                        info = client.publish(self.topic, self._payload(stored), qos=1,
                                              properties=self._publish_properties)
                        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                            self._error(f"publish failed: {mqtt.error_string(info.rc)}")
                            return False
                        window.sent(stored.id, info.mid)
                        next_after = stored.id
                        self._highest_sent = max(self._highest_sent, stored.id)
                        self.counters.published += 1
            if self._events:
                continue
            wait = self._wait_time(deadline)
            if window or self._budget.empty() or self._deferred_since is not None:
                wait = min(wait, ACK_POLL)  # acks do not wake us one by one; the budget refills with time
            self._wake.wait(wait)
            self._wake.clear()

    def _defer(self, now: float) -> bool:
        """Answers first: no burst while the bridge is answering requests, unless export has waited
        MAX_DEFERRAL already (so a sustained flood slows export down but never stops it)."""
        if not self.busy():
            self._deferred_since = None
            return False
        if self._deferred_since is None:
            self._deferred_since = now
        if now - self._deferred_since >= MAX_DEFERRAL:
            self._deferred_since = now
            return False
        return True

    def _take_events(self, window: AckWindow) -> tuple[bool, bool]:
        """Apply what paho's thread reported. Returns (the connection ended, it was healthy)."""
        cfg = self._cfg
        while self._events:
            event = self._events.popleft()
            if event[0] == "ack":
                _, mid, reason = event
                if reason.is_failure:  # the broker did not take it: it stays pending, retried after a backoff
                    if window.forget(mid):
                        self.counters.refused += 1
                        self._error(f"the broker refused a row on {self.topic}: {reason}")
                        return True, False
                elif window.ack(mid):
                    self.counters.acked += 1
            elif event[0] == "connack":
                if event[1].is_failure:
                    self.counters.connect_failures += 1
                    self._error(f"{cfg.host}:{cfg.port} refused the connection: {event[1]}")
                    return True, False
                self.connected = True
                self.counters.connections += 1
                self.last_error = None
                log.info("export: connected to %s:%d; exporting rows after id %d to %s",
                         cfg.host, cfg.port, self.watermark, self.topic)
            elif event[0] == "down":
                if not self.connected:
                    self.counters.connect_failures += 1
                    self._error(f"{cfg.host}:{cfg.port} closed the connection before accepting it: {event[1]}")
                    return True, False
                if not self._stop.is_set():
                    log.warning("export: disconnected from %s:%d: %s; %d rows in flight will be re-sent",
                                cfg.host, cfg.port, event[1], len(window))
                return True, True
        return False, True

    def _wait_time(self, deadline: float) -> float:
        if not self.connected or self._stop.is_set():
            return max(0.0, min(POLL_INTERVAL, deadline - time.monotonic()))
        if self.watermark != self._saved_watermark:
            return PERSIST_INTERVAL
        return POLL_INTERVAL

    def _client(self) -> tuple[mqtt.Client, Properties | None]:
        """A fresh client for one connection: no automatic reconnect, no session, nothing inherited."""
        cfg = self._cfg
        client, properties = new_client(ClientOptions(
            client_id=self._client_id, protocol=cfg.protocol, username=cfg.username, password=self._password,
            tls=self._tls, persistent=False,  # nothing to keep: the watermark is the session
            max_inflight=cfg.max_inflight, max_queued=0,  # unbounded in paho; the window bounds it
            reconnect_delays=None, connect_timeout=cfg.connect_timeout))
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        self._publish_properties = None
        if cfg.protocol == "5":
            self._publish_properties = Properties(PacketTypes.PUBLISH)
            self._publish_properties.PayloadFormatIndicator = 1  # UTF-8
            self._publish_properties.ContentType = "application/json"
        return client, properties

    def _payload(self, stored) -> bytes:
        row = to_row(stored.id, stored.entry, self._identity, self._fleet_id)
        return json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def _wait_counting_losses(self, delay: float) -> None:
        """The backoff between connections. While the uplink is down, retention may delete rows never
        sent: count them as they go (every POLL_INTERVAL), so `status` shows the loss during the
        outage, not only once the uplink returns."""
        end = time.monotonic() + delay
        while not self._stop.is_set():
            oldest = self._read(self.store.oldest_id, 0)
            if oldest:
                self._count_gap(self._highest_sent, oldest)
            left = end - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, POLL_INTERVAL))

    def _count_gap(self, after: int, row_id: int) -> None:
        """Ids between `after` and `row_id` that were never sent: retention deleted them first."""
        lost = row_id - max(after, self._highest_sent, self._lost_upto) - 1
        self._lost_upto = max(self._lost_upto, row_id - 1)
        if lost > 0:
            self.counters.lost_to_retention += lost
            log.warning("export: %d journal rows (ids %d..%d) were deleted by retention before they could be "
                        "exported; %d lost to export so far", lost, row_id - lost, row_id - 1,
                        self.counters.lost_to_retention)

    def _read(self, query, default):
        try:
            return query()
        except Exception as exc:  # sqlite3.Error: busy, I/O; try again at the next turn
            self.counters.store_errors += 1
            self._error(f"cannot read the journal: {type(exc).__name__}: {exc}")
            return default

    def _save_watermark(self, force: bool = False) -> None:
        if self.watermark == self._saved_watermark:
            return
        if not force and self.watermark - self._saved_watermark < PERSIST_ROWS and \
                time.monotonic() - self._saved_at < PERSIST_INTERVAL:
            return
        try:
            self.store.set_cursor(CURSOR, self.watermark)
        except Exception as exc:  # kept in memory; saved at the next turn
            self.counters.store_errors += 1
            self._error(f"cannot save the export watermark: {type(exc).__name__}: {exc}")
            return
        self._saved_watermark = self.watermark
        self._saved_at = time.monotonic()

    def _error(self, message: str) -> None:
        if message != self.last_error:
            log.warning("export: %s", message)
        else:
            log.debug("export: %s", message)
        self.last_error = message

    # -- paho callbacks (paho's network thread: never block, never raise) --------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._events.append(("connack", reason_code))
        self._wake.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._events.append(("ack", mid, reason_code))
        if len(self._events) >= self._refill_at or reason_code.is_failure:
            self._wake.set()  # not per ack: a wake-up per row costs the bridge's answers their CPU

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._events.append(("down", reason_code))
        self._wake.set()


def _tls_context(cfg: ExportConfig) -> ssl.SSLContext:
    try:
        return tls_context(cfg.tls_ca, cfg.tls_cert, cfg.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"[export] TLS files: {exc}") from None
