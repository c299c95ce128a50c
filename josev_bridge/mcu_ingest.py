"""MCU records into the edge store, persisted before they are acknowledged.

The serial thread calls `on_record` per record and `flush` per read batch. `flush` writes one
atomic snapshot for the whole batch and only then returns the ack, so the MCU keeps (and replays)
anything the bridge has not stored: a full disk or a kill -9 loses nothing.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from .adapters.serial_link import LinkState
from .adapters.state_file import AtomicJsonFile
from .core.conditions import SignalRecord
from .core.edge_store import EdgeStore
from .core.link_sequence import Outcome, SequenceTracker, Verdict
from .core.timestamps import format_us
from .protocol.records import Ack, Hello, KeepAlive, Record

log = logging.getLogger("josev_bridge.ingest")

STATE_FILE = "edges.json"


@dataclass
class IngestCounters:
    records: int = 0  # applied, in seq order
    edges: int = 0
    duplicates: int = 0  # replayed records already applied: skipped
    held: int = 0  # arrived after a gap: kept until the gap filled
    lost_records: int = 0  # the MCU no longer had them: reported, never silent
    untimed_records: int = 0
    persist_failures: int = 0


class McuIngest:
    """Owns the edge store and the link position; shared with the MQTT thread through `lock`."""

    def __init__(self, state_file: AtomicJsonFile) -> None:
        self.lock = threading.Lock()
        self.counters = IngestCounters()
        self.mcu_firmware: str | None = None
        self.last_record_us: int | None = None
        self._file = state_file
        self.store, self.tracker = self._load()
        self._dirty = False
        self._persist_failing = False

    def _load(self) -> tuple[EdgeStore, SequenceTracker]:
        data = self._file.load()
        if data is None:
            return EdgeStore(), SequenceTracker()
        try:
            store = EdgeStore.from_snapshot(data["edges"])
            tracker = SequenceTracker.from_snapshot(data.get("link", {}))
        except (KeyError, ValueError, TypeError) as exc:
            self._file.quarantine(f"has unexpected content ({exc})")
            return EdgeStore(), SequenceTracker()
        log.info("restored edges of EVSE %s and MCU link position %s from %s",
                 store.evse_ids() or "(none)", tracker.snapshot(), self._file.path)
        return store, tracker

    # -- RecordSink -------------------------------------------------------------------------------
    def on_record(self, seq: int, record: Record) -> None:
        if isinstance(record, SignalRecord):
            with self.lock:
                outcome = self.tracker.accept(seq, record)
            self._settle(outcome)
        elif isinstance(record, Hello):
            with self.lock:
                rebooted, outcome = self.tracker.hello(record.boot_id, getattr(record, "oldest_seq", None))
                if rebooted:
                    self.store.forget_states()
                    self._dirty = True
            self.mcu_firmware = record.firmware
            if rebooted:
                log.warning("MCU boot %08x (firmware %s, protocol v%d): new boot, counting its records from 1; "
                            "conditions are unknown until it reports them (stored edge times are kept)",
                            record.boot_id, record.firmware, record.protocol_version)
            else:
                log.info("MCU boot %08x (firmware %s) resumed", record.boot_id, record.firmware)
            self._settle(outcome)
        elif isinstance(record, KeepAlive):
            pass  # liveness is tracked by the link

    def replay_wanted(self) -> bool:
        """True while records after a gap are held: the link asks the MCU to replay."""
        return self.tracker.gap

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

    def _apply(self, seq: int, record: SignalRecord) -> None:
        c = self.counters
        with self.lock:
            self._dirty = True
            c.records += 1
            if record.time_us <= 0:
                c.untimed_records += 1
                log.error("MCU record seq %d (%s) carries no hardware time; not used (never invent a time)",
                          seq, record.signal.name)
                return
            edges = self.store.apply(record)
        self.last_record_us = record.time_us
        c.edges += len(edges)
        for edge in edges:
            log.info("EVSE %d %s %s at %s", edge.evse_id, edge.condition.value, edge.event_type.value,
                     format_us(edge.time_us))

    def flush(self) -> Ack | None:
        with self.lock:
            if not self._dirty or self.tracker.boot_id is None and self.tracker.last_seq == 0:
                return None
            snapshot = {"edges": self.store.snapshot(), "link": self.tracker.snapshot()}
            ack = Ack(self.tracker.boot_id or 0, self.tracker.last_seq)
        try:
            self._file.save(snapshot)
        except OSError as exc:
            self.counters.persist_failures += 1
            if not self._persist_failing:
                log.error("cannot persist MCU edges to %s: %s; not acknowledging, the MCU keeps them",
                          self._file.path, exc)
            self._persist_failing = True
            return None
        if self._persist_failing:
            log.info("persisting MCU edges works again")
        self._persist_failing = False
        with self.lock:
            self._dirty = False
        return ack

    def on_link_state(self, state: LinkState, detail: str) -> None:
        log.info("MCU link %s: %s", state.value, detail)
