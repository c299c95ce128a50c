"""edges.json: what the MCU ingest (services/mcu_ingest) keeps across restarts.

One document, replaced atomically (adapters/state_file) once per read batch and before the ack: the
edge store (host monotonic times), the MCU link position (the last record applied: what the ack
says), the clock mappings of the MCU boots still remembered, each with the host boot whose monotonic
clock it was fitted on, and the host's time line at the save (boot id, realtime minus monotonic, its
error, synchronised). At start, a clock mapping of another host boot is left out (it does not fit
this boot's clock), and edges stored in another host boot keep the UTC they had (core/host_time).
"""

from __future__ import annotations

import logging
from typing import Any

from ..core.clock_map import ClockMap
from ..core.edge_store import EdgeStore
from ..core.host_time import carried_over
from ..core.link_sequence import SequenceTracker
from ..protocol.records import Ack, SequencedRecord, Skipped
from .state_file import AtomicJsonFile

log = logging.getLogger("josev_bridge.ingest")  # the ingest's lines, under the name they always had

STATE_FILE = "edges.json"
# Damaged, edges.json is moved aside and the bridge starts without it rather than not at all: the
# answers must go on. What that costs, for the ERROR line:
STATE_LOSES = ("the stored edges (events before this start get no answer until the MCU reports them "
               "again) and the MCU link position (the MCU replays every record not yet acknowledged; "
               "acknowledged ones are not sent again)")

Tracker = SequenceTracker[SequencedRecord | Skipped]


class EdgesFile:
    """The ingest's edges.json: restored once at start, saved per read batch."""

    def __init__(self, file: AtomicJsonFile, host_boot: str) -> None:
        """`host_boot`: this host boot's id (adapters/host_clock), written with every save."""
        self.file = file
        self._host_boot = host_boot
        self._failing = False  # the last save failed: its ERROR line is written, the next success says so

    def restore(self) -> tuple[EdgeStore, Tracker, dict[int, ClockMap]]:
        """The edges, the link position and the MCU boots' clock mappings of the last save; empty ones
        when there is no file, or when its content is unexpected (then it is moved aside)."""
        data = self.file.load()
        if data is None:
            return EdgeStore(), SequenceTracker(), {}
        clocks: dict[int, ClockMap] = {}
        try:
            store = EdgeStore.from_snapshot(data["edges"])
            tracker: Tracker = SequenceTracker.from_snapshot(data.get("link", {}))
            same_host = (data.get("host") or {}).get("boot_id", self._host_boot) == self._host_boot
            for boot, clock in data.get("clocks", {}).items():
                if same_host and clock.get("host_boot") == self._host_boot:  # fits live on this boot's clock
                    clocks[int(boot)] = ClockMap.from_snapshot(clock)
            self._fix_earlier_boot(store, data)
        except (KeyError, ValueError, TypeError) as exc:
            self.file.quarantine(f"has unexpected content ({exc})")
            return EdgeStore(), SequenceTracker(), {}
        log.info("restored edges of EVSE %s, MCU link position %s and %d clock mapping(s) from %s",
                 store.evse_ids() or "(none)", tracker.snapshot(), len(clocks), self.file.path)
        return store, tracker, clocks

    def _fix_earlier_boot(self, store: EdgeStore, data: dict[str, Any]) -> None:
        """Edges stored in another host boot keep the UTC they had (core/host_time.carried_over)."""
        carried = carried_over(data.get("host"), data["edges"].get("version"), self._host_boot)
        if carried is not None:
            synced = carried[2]
            log.info("%d edge time(s) stored in an earlier host boot keep the UTC they had then (host clock then %s)",
                     store.fix_to_utc(*carried),
                     "unknown" if synced is None else "synchronised" if synced else "unsynchronised")

    def document(self, store: EdgeStore, link: Ack, clocks: dict[int, ClockMap], offset: tuple[int, int],
                 synchronised: bool | None) -> dict[str, Any]:
        """What to save: taken under the ingest's lock (it reads the store), saved outside it. `offset`:
        the host's realtime minus monotonic now and its error; the clock mappings not ready are left out."""
        return {"edges": store.snapshot(), "link": {"boot_id": link.boot_id, "last_seq": link.seq},
                "clocks": {str(b): {**c.snapshot(), "host_boot": self._host_boot}
                           for b, c in clocks.items() if c.ready},
                "host": {"boot_id": self._host_boot, "realtime_minus_monotonic_us": offset[0],
                         "offset_error_us": offset[1], "synchronised": synchronised}}

    def save(self, document: dict[str, Any]) -> bool:
        """Replace the file with `document`; False when that failed (disk full, read-only): the ingest
        then does not acknowledge, and the MCU keeps the records. One ERROR line per failing episode."""
        try:
            self.file.save(document)
        except OSError as exc:
            if not self._failing:
                log.error("cannot persist MCU edges to %s: %s; not acknowledging, the MCU keeps them",
                          self.file.path, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("persisting MCU edges works again")
        self._failing = False
        return True
