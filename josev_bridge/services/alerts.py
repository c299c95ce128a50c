"""Alerts from the hardware: the engine fed by MCU records, edges and link liveness; record, mute, deliver.

The serial thread calls `on_record` / `on_edge` as records are applied (in seq order, UTC times);
the daemon's housekeeping calls `tick` twice a second with the MCU link's last-heard time, on the
monotonic clock. The engine works in the board's UTC; this service puts the monotonic times on it with
the same reading of the realtime-minus-monotonic offset as "now", so the silence it measures is
monotonic time, and tells the engine of every change of that offset (a step of the board's clock:
`AlertEngine.on_clock_step`), so a hold is never cut short or stretched by one. Every
change is recorded in the alert store first, then delivered to the recipients that want it,
unless a muting rule covers it (then it is recorded with `muted: true` and delivered nowhere).
The engine's open episodes are saved after every change, so a restart neither loses nor repeats
an alert.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable

from .. import schemas
from ..adapters.alert_store import FILE_NAME, AlertStore
from ..adapters.host_clock import this_boot
from ..adapters.state_file import AtomicJsonFile
from ..config import Config
from ..core.alert_inputs import EvStatusRecord, FaultRecord
from ..core.alert_muting import is_muted
from ..core.alert_recipients import Recipient, RecipientKind, default_recipients
from ..core.alert_view import alert_summary, alert_view, charger_info, tech_code
from ..core.alerts import SESSION_CONDITIONS, AlertChange, AlertEngine, ChangeKind
from ..core.conditions import Edge
from ..core.journal_age import UNKNOWN_BOOT
from ..core.timestamps import format_us

log = logging.getLogger("josev_bridge.alerts")

ENGINE_FILE = "alerts-engine.json"
ENGINE_LOSES = ("the open alert episodes and session state (an alert open before stays without an end in "
                "alerts.sqlite; a condition the MCU reports again opens a new alert)")
NOTIFY_EVENT = "notify_event"
CLOCK_KEY = "clock"  # in the engine file: the host boot and offset its hold and silence starts are on


STEP_MIN_US = 1_000  # an offset change beyond this is passed on to the engine (reading jitter is not)


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


def _realtime_offset_us() -> int:
    return time.time_ns() // 1000 - time.monotonic_ns() // 1000


class AlertService:
    def __init__(self, config: Config, publish: Callable[[str, bytes], str | None],
                 monotonic_us: Callable[[], int] = _monotonic_us,
                 offset_us: Callable[[], int] = _realtime_offset_us, host_boot: str | None = None) -> None:
        """`monotonic_us`: the clock `tick`'s last-heard times are on; `offset_us`: realtime minus it
        (the daemon's HostClock.offset, steps and all); `host_boot`: the host boot that offset belongs to."""
        self._config = config
        self._publish = publish
        self._monotonic_us = monotonic_us
        self._offset_us = offset_us
        self._offset_seen = offset_us()
        self._host_boot = host_boot if host_boot is not None else this_boot()
        self._lock = threading.Lock()
        self.store = AlertStore(config.state_dir / FILE_NAME, repair=True)
        self._engine_file = AtomicJsonFile(config.state_dir / ENGINE_FILE, loses=ENGINE_LOSES)
        self.engine = self._load_engine()
        self._saved = self.engine.snapshot()  # what the file holds (or an empty engine's)
        self.recipients: tuple[Recipient, ...] = config.alerts.recipients or default_recipients(config.charger.identity)
        self._notify_validator = schemas.validator("notify_event.update")
        self.charger, self.ports = charger_info(config)
        self.delivered = 0
        self.muted = 0
        self.delivery_failures = 0

    def _load_engine(self) -> AlertEngine:
        settings = self._config.alerts.settings
        data = self._engine_file.load()
        if data is None:
            return AlertEngine(settings)
        try:
            engine = AlertEngine.from_snapshot(data, settings)
        except (ValueError, KeyError, TypeError) as exc:
            self._engine_file.quarantine(f"has unexpected content ({exc})")
            return AlertEngine(settings)
        log.info("restored %d open alert episode(s) from %s", len(engine.open_alerts()), self._engine_file.path)
        self._follow_saved_clock(engine, data.get(CLOCK_KEY))
        return engine

    def _follow_saved_clock(self, engine: AlertEngine, saved: object) -> None:
        """The engine's hold and silence starts are on the time line of the offset in force when they
        were saved: a step since then in this host boot (the bridge was stopped) moves them too. From
        another boot the step cannot be known (monotonic time restarted): a start left after now
        counts from now (AlertEngine.tick), one left before may end at once."""
        if not isinstance(saved, dict) or saved.get("host_boot") != self._host_boot or self._host_boot == UNKNOWN_BOOT:
            return  # an unreadable boot id matches no boot, not even itself
        offset = saved.get("realtime_minus_monotonic_us")
        if isinstance(offset, int) and not isinstance(offset, bool) and abs(self._offset_seen - offset) > STEP_MIN_US:
            engine.on_clock_step(self._offset_seen - offset)
            log.info("host clock stepped by %+.6f s while the bridge was stopped: alert holds follow",
                     (self._offset_seen - offset) / 1e6)

    def close(self) -> None:
        self.store.close()

    def open_keys(self) -> list[str]:
        """The open episodes (for status), read under the lock the serial thread also takes."""
        with self._lock:
            return [a.key for a in self.engine.open_alerts()]

    # -- inputs (serial thread, housekeeping) -----------------------------------------------------
    # `state_may_change`: the input may have changed the engine's state without an alert change (a
    # session opened, a SoC, faults unconfirmed by a reboot); the snapshot is then saved if it differs,
    # so a restart does not forget a session that raised no alert.
    def on_record(self, record: FaultRecord | EvStatusRecord) -> None:
        with self._lock:
            self._follow_clock()
            changes = (self.engine.on_fault(record) if isinstance(record, FaultRecord)
                       else self.engine.on_ev_status(record))
            self._handle(changes, state_may_change=True)

    def on_edge(self, edge: Edge) -> None:
        with self._lock:
            self._follow_clock()
            self._handle(self.engine.on_edge(edge), state_may_change=edge.condition in SESSION_CONDITIONS)

    def on_mcu_reboot(self, seen_us: int) -> None:
        with self._lock:
            self._follow_clock()
            self._handle(self.engine.on_mcu_reboot(seen_us), state_may_change=True)

    def tick(self, last_heard_monotonic_us: int | None) -> None:
        """`last_heard_monotonic_us`: the MCU link's last frame (or the link's opening), on `monotonic_us`."""
        with self._lock:
            offset = self._follow_clock()
            last_heard = None if last_heard_monotonic_us is None else last_heard_monotonic_us + offset
            self._handle(self.engine.tick(self._monotonic_us() + offset, last_heard))

    def _follow_clock(self) -> int:
        """The offset now; a change since the last input is a step (or slewing added up) the engine
        moves its hold and silence times by. Under the lock."""
        offset = self._offset_us()
        if abs(offset - self._offset_seen) > STEP_MIN_US:
            self.engine.on_clock_step(offset - self._offset_seen)
            self._offset_seen = offset
            self._save()  # the moved starts, with the offset they are now on: a restart must not move them twice
        return self._offset_seen

    def _now_us(self) -> int:
        return self._monotonic_us() + self._offset_us()

    # -- record, mute, deliver --------------------------------------------------------------------
    def _handle(self, changes: list[AlertChange], state_may_change: bool = False) -> None:
        if not changes and not state_may_change:
            return
        for change in changes:
            try:
                self._one(change)
            except Exception:  # one bad alert must not stop the others, nor the thread that fed it
                log.exception("alert %s %s could not be recorded or delivered", change.kind.value, change.alert.key)
        self._save()

    def _save(self) -> None:
        """Write the engine's snapshot when it differs from the last one written (no write per SoC
        report that changed nothing: this is flash)."""
        snapshot = self.engine.snapshot()
        if snapshot == self._saved:  # then it holds no start a step moved: the offset it was saved with is moot
            return
        try:
            self._engine_file.save({**snapshot, CLOCK_KEY: {"host_boot": self._host_boot,
                                                            "realtime_minus_monotonic_us": self._offset_seen}})
        except OSError as exc:
            log.error("cannot save open alert episodes to %s: %s", self._engine_file.path, exc)
            return
        self._saved = snapshot

    def _one(self, change: AlertChange) -> None:
        alert = change.alert
        if self.store.id_of(alert) is None:  # a new episode (or one a crash kept from the store)
            muted = is_muted(alert, self._config.alerts.mute, self._now_us())  # mute windows are wall time
            wanted = tuple(r for r in self.recipients if r.wants(alert))
            alert_id = self.store.record(alert, muted, tuple(r.id for r in wanted))
        else:  # an update or the end: muted flag and recipients stay as recorded when it opened
            alert_id = self.store.record(alert, False, ())
            stored = self.store.get(alert_id)
            assert stored is not None
            muted = stored.muted
            wanted = tuple(r for r in self.recipients if r.id in stored.recipients)
        if change.kind is ChangeKind.UPDATED:
            return  # the API shows the current ETA; updates are not pushed
        if muted:
            self.muted += 1
            log.info("alert %d %s %s (muted: recorded, not delivered)", alert_id, alert.type.value, change.kind.value)
            return
        view = alert_view(alert, alert_id, False, self.charger, self.ports)
        for recipient in wanted:
            self._deliver(recipient, change, alert_id, view)

    def _deliver(self, recipient: Recipient, change: AlertChange, alert_id: int, view: dict) -> None:
        try:
            if recipient.kind is RecipientKind.MQTT:
                ok = self._publish(recipient.topic or "", json.dumps({"event": change.kind.value, "alert": view},
                                                                      separators=(",", ":")).encode()) is None
            elif recipient.kind is RecipientKind.NOTIFY_EVENT:
                ok = self._publish(self._config.mqtt.josev_response_topic,
                                   self._notify_event(change, alert_id)) is None
            else:
                ok = True
                level = logging.WARNING if change.kind is ChangeKind.OPENED else logging.INFO
                log.log(level, "ALERT %d %s %s: %s", alert_id, alert_summary(change.alert), change.kind.value,
                        "since " + view["startTimestamp"] if change.kind is ChangeKind.OPENED
                        else "ended " + str(view["endTimestamp"]))
        except Exception:
            log.exception("alert %d: delivery to recipient %d (%s) failed", alert_id, recipient.id,
                          recipient.kind.value)
            ok = False
        if ok:
            self.delivered += 1
        else:
            self.delivery_failures += 1

    def _notify_event(self, change: AlertChange, alert_id: int) -> bytes:
        """Josev's notify_event update: the CSMS sees the hardware fault (and its end) through Josev."""
        alert = change.alert
        closed = change.kind is ChangeKind.CLOSED
        data: dict = {"event_id": alert_id,
                      "timestamp": format_us(alert.end_us if closed and alert.end_us else alert.start_us),
                      "tech_code": tech_code(alert)[:50],
                      "tech_info": (("cleared: " if closed else "") + alert_summary(alert))[:500]}
        if alert.evse_id is not None:
            data["evse_id"] = alert.evse_id
        message = {"id": str(uuid.uuid4()), "name": NOTIFY_EVENT, "type": "update", "data": data}
        if not self._notify_validator.is_valid(message):
            raise RuntimeError(f"notify_event fails its schema: {message!r}")
        return json.dumps(message, separators=(",", ":")).encode()
