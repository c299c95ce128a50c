"""MCU records into the edge store: in seq order, on the host's time line, persisted before acked.

The serial thread calls `on_record` per record, `on_clock_sample` per clock probe answer and
`flush` per read batch. A record is applied once its boot's clock is mapped, one stamped during an
outage once a probe sample after it makes it an interpolation (`clock_sample_wanted`); `flush`
writes one atomic snapshot for the batch and only then returns the ack, up to the last *applied*
record, so the MCU keeps (and replays) anything the bridge has not stored: a kill -9 loses nothing.

Edges are stored in host monotonic time with their mapping error bound; an answer adds the host's
realtime-minus-monotonic offset of that moment (adapters/host_clock): a board clock stepped after the
edge is followed. After a host reboot, stored edges keep the UTC they had (core/host_time).

FAULT and EV_STATUS records (the alert engine's inputs) take the same path: sequenced with the
signals, held behind gaps, waiting for their boot's clock, mapped to UTC. Instead of the edge store
they go to the alert listeners, in seq order, on the serial thread and before the ack.
Across MCU reboots, core/mcu_boots.py keeps unchanged levels' edges (LEVEL), and the MCU's
KEEPALIVE says when a record it sent never arrived.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..adapters.edges_file import EdgesFile
from ..adapters.host_clock import HostClock
from ..adapters.state_file import AtomicJsonFile
from ..core.alert_inputs import AlertRecord, FaultRecord, describe, log_line, with_utc
from ..core.clock_map import ClockMap, ClockSample, to_utc_us, to_utc_with_bound
from ..core.clock_wait import ClockWait
from ..core.conditions import Condition, Edge, LevelRecord, SignalRecord
from ..core.event_timestamp import Answer, Query, Silence, answer
from ..core.link_sequence import Outcome, Verdict
from ..core.link_state import LinkState
from ..core.mcu_boots import BootTracker, level_outcome_lines, version_consequence
from ..core.timestamps import format_us
from ..protocol.framing import PROTOCOL_VERSION
from ..protocol.records import SEQUENCED, Ack, Hello, KeepAlive, Record, SequencedRecord, Skipped

log = logging.getLogger("josev_bridge.ingest")

CLOCKS_KEPT = 4  # MCU boots whose clock mapping is remembered (for records replayed after a reboot)

AlertListener = Callable[[AlertRecord], None]


@dataclass
class IngestCounters:
    records: int = 0  # applied, in seq order
    edges: int = 0
    duplicates: int = 0  # replayed records already applied: skipped
    held: int = 0  # arrived after a gap: kept until the gap filled
    lost_records: int = 0  # the MCU no longer had them: reported, never silent
    untimed_records: int = 0
    clock_outliers: int = 0
    clock_restarts: int = 0
    persist_failures: int = 0
    faults: int = 0  # FAULT records applied (untimed ones included; those are not passed on)
    ev_status: int = 0  # EV_STATUS records applied (likewise)
    skipped_records: int = 0  # numbered frames of an unknown type or with a bad body: counted, not applied
    alert_listener_errors: int = 0  # a listener raised: logged, ingest went on
    levels: int = 0  # LEVEL records applied (a level re-reported after an MCU boot)
    continuity_assumed: int = 0  # edges kept across an MCU reboot because the level did not change
    untimed_edges: int = 0  # levels that changed across a reboot at a time nobody knows: never answered
    keepalive_gaps: int = 0  # an MCU KEEPALIVE showed a record (or a HELLO) lost on the line: replay asked


class McuIngest:
    """Owns the edge store, the link position and the clock maps; shared with the MQTT thread via `lock`."""

    def __init__(self, state_file: AtomicJsonFile, host_clock: HostClock | None = None,
                 realtime_offset_us: Callable[[], int | tuple[int, int]] | None = None) -> None:
        """`realtime_offset_us` replaces the host clock's offset (tests: a fixed time line)."""
        self.lock = threading.Lock()
        self.counters = IngestCounters()
        self.mcu_firmware: str | None = None
        self.boots = BootTracker(PROTOCOL_VERSION)
        self.last_record_us: int | None = None
        self.host_clock = host_clock or HostClock()
        self._realtime_offset_us = realtime_offset_us or self.host_clock.offset
        self._file = EdgesFile(state_file, self.host_clock.boot_id)  # edges.json
        self.store, self.tracker, self.clocks = self._file.restore()
        self._applied_seq = self.tracker.last_seq
        self._waiting: ClockWait[SequencedRecord | Skipped] = ClockWait()  # records waiting for their boot's clock
        self._alert_listeners: list[AlertListener] = []
        self._edge_listeners: list[Callable[[Edge], None]] = []
        self._reboot_listeners: list[Callable[[int], None]] = []
        self._dirty = False
        self._version_logged: int | None = None  # the boot whose other protocol version was logged

    def add_alert_listener(self, callback: AlertListener) -> None:
        """Call `callback(record)` with every timed FAULT/EV_STATUS record, UTC-mapped, in seq order.

        Called on the serial thread, outside `lock`, before the record is acknowledged to the MCU:
        a listener that must not lose a record across a crash persists it before returning, and
        none may block for long (the link waits). An exception is logged, never fatal to ingest.
        """
        self._alert_listeners.append(callback)

    def add_edge_listener(self, callback: Callable[[Edge], None]) -> None:
        """Call `callback(edge)` for every condition edge, in order, on the serial thread (the alert
        engine follows charging sessions this way). Same rules as `add_alert_listener`."""
        self._edge_listeners.append(callback)

    def add_reboot_listener(self, callback: Callable[[int], None]) -> None:
        """Call `callback(utc_us)` when a HELLO shows the MCU rebooted (a new boot id), with the host's
        UTC time it was seen, before any record of the new boot (the alert engine's faults become
        unknown then). Serial thread; same rules as `add_alert_listener`."""
        self._reboot_listeners.append(callback)

    @property
    def applied_seq(self) -> int:
        """The last record of the current MCU boot applied (and acknowledged once saved); the ones after
        it may wait for their boot's clock."""
        return self._applied_seq

    @property
    def clock(self) -> ClockMap | None:
        """The current MCU boot's clock mapping (for status)."""
        return self.clocks.get(self.tracker.boot_id) if self.tracker.boot_id is not None else None

    def lookup(self, query: Query, *, enabled: bool, supported: frozenset[Condition],
               reply_with_current_time_when_unknown: bool, clock_us: Callable[[], int]) -> Answer | Silence:
        """Answer one get_event_timestamp query from the edge store, under the ingest's lock (one
        acquisition, one `core.event_timestamp.answer` call; `clock_us` is read inside the lock). UTC is
        the edge's monotonic time plus the host's offset now (an answer follows a board clock step)."""
        offset, offset_error = self._offset_and_error()
        with self.lock:
            return answer(query, self.store, enabled=enabled, supported=supported,
                          reply_with_current_time_when_unknown=reply_with_current_time_when_unknown,
                          now_us=clock_us(), offset_us=offset, offset_error_us=offset_error)

    # -- RecordSink -------------------------------------------------------------------------------
    def on_record(self, seq: int, record: Record | Skipped) -> None:
        if isinstance(record, SEQUENCED) or isinstance(record, Skipped):
            with self.lock:
                outcome = self.tracker.accept(seq, record)
            self._settle(outcome)
        elif isinstance(record, Hello):
            self._on_hello(record)
        elif isinstance(record, KeepAlive) and record.boot_id is not None and record.next_seq is not None:
            with self.lock:  # (liveness is the link's business) how far the MCU has sent: a record lost?
                lost = self.boots.on_keepalive(record.boot_id, record.next_seq, record.time_us,
                                               self.tracker.boot_id, self.tracker.last_seq)
            if lost:
                self.counters.keepalive_gaps += 1
                log.warning("%s", lost)

    def _mapper(self, clock: ClockMap, offset: int) -> Callable[[int], tuple[int, int]]:
        """MCU clock -> (host monotonic, error bound) through `clock`, the edge store's time line (the
        realtime `offset` only decides whether an MCU on UTC is reported unaltered: core/clock_map)."""
        def to_host(mcu_us: int) -> tuple[int, int]:
            utc_us, bound_us = to_utc_with_bound(clock, mcu_us, offset)
            return utc_us - offset, bound_us
        return to_host

    def _on_hello(self, record: Hello) -> None:
        with self.lock:
            old_boot = self.tracker.boot_id
            old_clock = self.clocks.get(old_boot) if old_boot is not None else None
            rebooted, outcome = self.tracker.hello(record.boot_id, record.oldest_seq)
            again, lost = self._waiting.hello(rebooted, record.oldest_seq, record.next_seq)
            mapper = self._mapper(old_clock, self._offset_and_error()[0]) if old_clock and old_clock.ready else None
            label = self.boots.on_hello(record.protocol_version, record.boot_id, old_boot, rebooted, self.store,
                                        mapper)
            if rebooted:
                self._dirty = True
                self._applied_seq = 0
                self._waiting_given_up(record.boot_id, again, lost)
                self.clocks.setdefault(record.boot_id, ClockMap())
                for old in list(self.clocks)[:-CLOCKS_KEPT]:
                    del self.clocks[old]
        self.mcu_firmware = record.firmware
        if record.protocol_version != PROTOCOL_VERSION and self._version_logged != record.boot_id:
            self._version_logged = record.boot_id
            log.warning("MCU boot %08x speaks serial protocol v%d, the bridge v%d: %s", record.boot_id,
                        record.protocol_version, PROTOCOL_VERSION,
                        version_consequence(record.protocol_version, PROTOCOL_VERSION))
        if rebooted:
            log.warning("MCU boot %08x (firmware %s, protocol v%d): new boot, counting its records from 1; "
                        "%s", record.boot_id, record.firmware, record.protocol_version,
                        f"levels are unconfirmed until it re-reports them ({label}; stored edges are kept)"
                        if label else "no level known before it")
            seen_us = time.time_ns() // 1000
            for listener in self._reboot_listeners:
                try:
                    listener(seen_us)
                except Exception:
                    self.counters.alert_listener_errors += 1
                    log.exception("reboot listener %r failed on MCU boot %08x; ingest goes on", listener,
                                  record.boot_id)
        else:
            log.info("MCU boot %08x (firmware %s) resumed", record.boot_id, record.firmware)
        self._settle(outcome)

    def on_clock_sample(self, sample: ClockSample) -> None:
        boot = self.tracker.boot_id
        self._waiting.sample_answered()
        if boot is None or sample.mcu_us == 0:  # 0: the MCU had no clock reading yet (§5.1), not a sample
            return
        with self.lock:
            clock = self.clocks.setdefault(boot, ClockMap())
            verdict = clock.add(sample)
        if verdict == "outlier":
            self.counters.clock_outliers += 1
        elif verdict == "restarted":
            self.counters.clock_restarts += 1
            log.warning("MCU clock of boot %08x stepped: its mapping to UTC starts again", boot)
        self._waiting.release(self._apply)

    def clock_sample_wanted(self) -> bool:
        """True while records wait for a clock sample (the link then probes every 0.1 s): for a boot
        not mapped yet, or for a sample after records stamped during an outage (core/clock_wait)."""
        return self._waiting.wanted()

    def replay_wanted(self) -> bool:
        """True while records after a gap are held, or while the MCU's KEEPALIVE says it sent records
        the bridge has not received: the link asks the MCU to replay."""
        return self.tracker.gap or self.boots.missing(self.tracker.boot_id, self.tracker.last_seq)

    def _settle(self, outcome: Outcome) -> None:
        c = self.counters
        if outcome.verdict is Verdict.DUPLICATE:
            c.duplicates += 1
        elif outcome.verdict is Verdict.HELD:
            c.held += 1
        if outcome.lost:
            c.lost_records += outcome.lost
            log.error("MCU records lost: %d record(s) before seq %d are no longer held by the MCU and never "
                      "arrived; events in them are missing", outcome.lost, self.tracker.last_seq + 1)
        for seq, record in outcome.released:
            self._apply(seq, record)

    def _apply(self, seq: int, record: SequencedRecord | Skipped) -> None:
        clock = self._waiting.clock_for(seq, record, getattr(record, "time_us", 0), self.clock)
        if clock is None:  # it waits for its boot's clock, in order
            return
        if isinstance(record, Skipped):
            with self.lock:
                self._dirty = True
                self._applied_seq = seq
                self.counters.skipped_records += 1
            return
        self.boots.applied(record.time_us)  # the bridge holds every record of this boot up to here
        if isinstance(record, LevelRecord):
            self._apply_level(seq, record, clock)
            return
        if not isinstance(record, SignalRecord):
            self._apply_alert(seq, record, clock)
            return
        if self.boots.is_v1_rereport(record, self.store):
            self._apply_level(seq, LevelRecord(record.evse_id, record.connector_id, record.signal, True,
                                               record.time_us), clock)
            return
        with self.lock:
            if not self._taken(seq, record.time_us, record.signal.name):
                return
            offset, offset_error = self._offset_and_error()
            host_us, bound_us = self._mapper(clock, offset)(record.time_us)
            edges = self.store.apply(SignalRecord(record.evse_id, record.connector_id, record.signal,
                                                  record.state, host_us), bound_us)
        self.last_record_us = host_us + offset
        self._edges_made(seq, edges, offset, bound_us + offset_error)

    def _taken(self, seq: int, time_us: int, what: str) -> bool:
        """Count record `seq` as applied (under the lock); False when it carries no hardware time and
        so cannot be used: counted and logged, never given an invented time."""
        self._dirty = True
        self._applied_seq = seq
        self.counters.records += 1
        if time_us == 0:
            self.counters.untimed_records += 1
            log.error("MCU record seq %d (%s) carries no hardware time; not used (never invent a time)", seq, what)
            return False
        return True

    def _apply_level(self, seq: int, record: LevelRecord, clock: ClockMap) -> None:
        """A level re-reported without claiming an edge: the edge it implies, if any (core/mcu_boots)."""
        c = self.counters
        with self.lock:
            c.levels += 1
            if not self._taken(seq, record.time_us, f"{record.signal.name} level"):
                return
            offset, offset_error = self._offset_and_error()
            outcome, when = self.boots.apply_level(record, self.store, self._mapper(clock, offset), offset)
            c.continuity_assumed += len(outcome.kept)
            c.untimed_edges += len(outcome.edges) if when.untimed else 0
        kept_lines, untimed_lines = level_outcome_lines(record.evse_id, outcome, when, self.store, offset)
        for level, line in [(logging.INFO, k) for k in kept_lines] + [(logging.WARNING, u) for u in untimed_lines]:
            log.log(level, "%s", line)
        bound = None if when.error_us is None else when.error_us + offset_error
        self._edges_made(seq, outcome.edges, offset, bound, when.note, log_them=not when.untimed)

    def _edges_made(self, seq: int, edges: list[Edge], offset_us: int, bound_us: int | None = None,
                    note: str | None = None, log_them: bool = True) -> None:
        """Count and log new edges (host monotonic times: logged in UTC with `offset_us`, the realtime
        offset they were mapped with), and hand them to the edge listeners, in UTC as of now."""
        self.counters.edges += len(edges)
        if edges and log_them and log.isEnabledFor(logging.INFO):  # formatting costs more than applying
            for edge in edges:
                log.info("EVSE %d %s %s at %s (clock mapping error <= %.3f ms)%s", edge.evse_id,
                         edge.condition.value, edge.event_type.value, format_us(edge.time_us + offset_us),
                         (bound_us or 0) / 1000, f": {note}" if note else "")
        if self._edge_listeners:  # the listeners (the alert engine) take UTC
            edges = [dataclasses.replace(edge, time_us=edge.time_us + offset_us) for edge in edges]
        for listener in self._edge_listeners:
            for edge in edges:
                try:
                    listener(edge)
                except Exception:
                    self.counters.alert_listener_errors += 1
                    log.exception("edge listener %r failed on MCU record seq %d; ingest goes on", listener, seq)

    def _apply_alert(self, seq: int, record: AlertRecord, clock: ClockMap) -> None:
        """Count it, map its times to UTC and hand it to the listeners (after releasing the lock)."""
        with self.lock:
            if isinstance(record, FaultRecord):
                self.counters.faults += 1
            else:
                self.counters.ev_status += 1
            if not self._taken(seq, record.time_us, describe(record)):
                return
            offset = self._offset_and_error()[0]
            mapped = with_utc(record, lambda mcu_us: to_utc_us(clock, mcu_us, offset))
        self.last_record_us = mapped.time_us
        _log_alert(mapped)
        for listener in self._alert_listeners:
            try:
                listener(mapped)
            except Exception:
                self.counters.alert_listener_errors += 1
                log.exception("alert listener %r failed on MCU record seq %d (%s); ingest goes on",
                              listener, seq, describe(mapped))

    def _offset_and_error(self) -> tuple[int, int]:
        """UTC minus host monotonic now, and the error of that reading (0 when given as a plain value)."""
        value = self._realtime_offset_us()
        return value if isinstance(value, tuple) else (value, 0)

    def _waiting_given_up(self, boot_id: int, again: list[int], lost: int) -> None:
        """A HELLO of boot `boot_id` ended the wait of records for their boot's clock (core/clock_wait):
        those set aside for its replay are not counted (nothing is lost); the rest are counted as
        untimed and logged."""
        if again:
            log.info("%d MCU record(s) received before the HELLO of boot %08x set aside: its replay sends "
                     "them again (seq %d to %d)", len(again), boot_id, again[0], again[-1])
        if lost:
            self.counters.untimed_records += lost
            log.error("%d MCU record(s) dropped: the MCU rebooted before their clock was known", lost)

    def flush(self) -> Ack | None:
        """Save the batch's state (edges.json) and return the ack to send, or None: nothing new, or the
        save failed (the MCU keeps the records not acknowledged)."""
        with self.lock:
            if not self._dirty or self.tracker.boot_id is None:
                return None
            ack = Ack(self.tracker.boot_id, self._applied_seq)
            document = self._file.document(self.store, ack, self.clocks, self._offset_and_error(),
                                           self.host_clock.synchronised)
        if not self._file.save(document):
            self.counters.persist_failures += 1
            return None
        with self.lock:
            self._dirty = False
        return ack

    def on_host_clock_change(self) -> None:
        """The host clock stepped or changed sync state: save the new offset with the edges at the next
        flush, so that edges carried over a reboot keep the UTC of the latest time line."""
        with self.lock:
            self._dirty = True

    def on_link_state(self, state: LinkState, detail: str) -> None:
        if state is LinkState.CLOSED:
            self._waiting.link_closed()
        log.info("MCU link %s: %s", state.value, detail)


def _log_alert(record: AlertRecord) -> None:
    """INFO per fault (technicians read these); DEBUG per EV status (frequent, for diagnosis)."""
    level = logging.INFO if isinstance(record, FaultRecord) else logging.DEBUG
    if log.isEnabledFor(level):  # formatting costs more than applying
        log.log(level, "%s", log_line(record))
