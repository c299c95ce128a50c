"""The running bridge: wires config, core and adapters together; housekeeping, watchdog, signals.

Threads: `mqtt` (paho's network loop; answers requests in its callback for latency), `serial`
(reads the MCU), and the main thread (this loop: health, watchdog, device-model change log,
SIGHUP reload, SIGTERM stop). READY is sent once the state is loaded, before the broker or the
port answer: both reconnect on their own, and systemd should not kill a bridge waiting for them.
"""

from __future__ import annotations

import dataclasses
import errno
import faulthandler
import gc
import json
import logging
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

from . import __version__, schemas, status_report
from .adapters import status_file
from .adapters.damage import describe, probe_writable
from .adapters.device_model_store import DeviceModelStore, load_definitions
from .adapters.edges_file import STATE_FILE, STATE_LOSES
from .adapters.host_clock import HostClock
from .adapters.journal_retention import RetentionPolicy
from .adapters.journal_store import FILE_NAME as JOURNAL_FILE
from .adapters.log_output import configure_logging
from .adapters.mqtt_link import MqttLink
from .adapters.serial_link import SerialLink
from .adapters.state_file import AtomicJsonFile
from .adapters.systemd_notify import SystemdNotifier
from .api.supervisor import ApiProcess, ApiSettings
from .api.token_file import load_or_create_token
from .config import Config, ConfigError, load, reload_plan
from .core.conditions import Edge
from .core.journal_entry import DEVICE_MODEL_CHANGE, MCU_EDGE, MCU_LINK, Direction, JournalEntry, NoAnswer
from .messages import Router
from .services.alerts import AlertService
from .services.device_model_sync import NAME as SET_VARIABLE_VALIDATE, DeviceModelSync
from .services.event_timestamp import (
    NAME,
    EventTimestampService,
    certainly_valid_request,
    encode as encode_event_timestamp,
)
from .services.journal import Journal
from .services.journal_export import JournalExporter
from .services.mcu_ingest import McuIngest
from .services.mqtt_intake import MqttIntake

log = logging.getLogger("josev_bridge.daemon")

HOUSEKEEPING_INTERVAL = 0.5  # seconds; also bounds how late a device-model change is logged
SERIAL_STALL_LIMIT = 5.0  # the serial loop turns at least every 0.2 s; 5 s without means it is stuck
# While the journal, export or serial thread runs Python code, a request arriving on the MQTT thread
# waits for the GIL up to the switch interval (5 ms by default), and that wait was the p99 of an
# answer. 0.5 ms bounds the wait; the cost (more switches) is paid only while threads actually contend.
GIL_SWITCH_INTERVAL_S = 0.0005
EXPORT_QUIET_S = 0.005  # export sends its bursts when no message arrived for this long (answers first)


class Bridge:
    def __init__(self, config: Config) -> None:
        self.config = config
        schemas.assert_format_checking()
        state_dir = config.state_dir
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        probe_writable(state_dir)  # read-only or full: one line with the errno now, not SQLite's words later
        self.device_model = DeviceModelStore(state_dir, load_definitions(config.paths.device_model_dir or None),
                                             repair=True)
        for change in self.device_model.seed_defaults():
            log.info("device model: %s.%s = %s (default)", change.component, change.variable, change.new_value)
        self.host_clock = HostClock()
        self.ingest = McuIngest(AtomicJsonFile(state_dir / STATE_FILE, loses=STATE_LOSES), self.host_clock)
        m = config.mqtt
        self.mqtt = MqttLink(m, status_topic=config.status_topic,
                             subscriptions=[m.request_topic, m.josev_request_topic],
                             on_message=lambda message: self.intake.on_message(message))  # (built below)
        self.timestamps = EventTimestampService(config, self.ingest, self.device_model)
        self.dm_sync = DeviceModelSync(self.device_model)
        self.routers = {m.request_topic: Router(self.mqtt.publish), m.josev_request_topic: Router(self.mqtt.publish)}
        self.routers[m.request_topic].register(
            NAME, "request", "get_event_timestamp.request", self.timestamps.handle, response_topic=m.response_topic,
            response_schema="get_event_timestamp.response", certainly_valid=certainly_valid_request,
            encode=encode_event_timestamp)
        self.routers[m.josev_request_topic].register(
            SET_VARIABLE_VALIDATE, "request", "set_variable_validate.request", self.dm_sync.handle,
            response_topic=m.josev_response_topic, response_schema="set_variable_validate.response", cache_size=1024)
        self.answers = self.routers[m.request_topic].counts(NAME)
        self.serial = SerialLink(config.serial, self.ingest, self.host_clock.monotonic_us)
        self.alerts = (AlertService(config, self._send_own, offset_us=lambda: self.host_clock.offset()[0],
                                    host_boot=self.host_clock.boot_id)
                       if config.alerts.enabled else None)
        if self.alerts is not None:
            self.ingest.add_alert_listener(self.alerts.on_record)
            self.ingest.add_edge_listener(self.alerts.on_edge)
            self.ingest.add_reboot_listener(self.alerts.on_mcu_reboot)
        self._started_at = time.monotonic()
        self.journal = self._open_journal(config, self.host_clock)
        if self.journal is not None:
            self.ingest.add_edge_listener(self._journal_edge)
        self.intake = MqttIntake(self.routers, self.journal)
        self.api = self._open_api(config)
        self.export = self._open_export(config)
        self._link_seen: dict = {}
        self.notifier = SystemdNotifier()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._status_sent = ""
        runtime = Path(config.paths.runtime_dir)
        runtime.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._status_file = status_file.writer(runtime)
        self._status_written: tuple[dict | None, float] = (None, 0.0)
        latest = self.device_model.history(limit=1)
        self._audit_cursor = latest[0].id if latest else 0

    @staticmethod
    def _open_journal(config: Config, host_clock: HostClock) -> Journal | None:
        if not config.journal.enabled:
            return None
        j = config.journal
        policy = RetentionPolicy(max_age_us=int(j.max_age_days * 86_400e6), max_bytes=int(j.max_size_mb * 2**20))
        return Journal(config.state_dir / JOURNAL_FILE, policy, clock=host_clock.clock_reading)

    def _open_export(self, config: Config) -> JournalExporter | None:
        """Store-and-forward of journal rows to the fleet's broker (docs/journal-export.md)."""
        if not config.export.enabled or self.journal is None:  # config.py refuses export without the journal
            return None
        exporter = JournalExporter(config.export, self.journal.store.path, identity=config.charger.identity,
                                   fleet_id=config.charger.fleet_id, client_id=config.export_client_id,
                                   topic=config.export_topic)
        self.journal.add_listener(exporter.notify)
        exporter.busy = lambda: time.monotonic() - self.intake.last_request_at < EXPORT_QUIET_S
        return exporter

    def _open_api(self, config: Config) -> ApiProcess | None:
        """The HTTP API runs in a process of its own (api/supervisor.py says why); what can fail at
        start happens here, in the daemon: the token file, and binding the port."""
        if not config.api.enabled:
            return None
        if self.journal is None:
            raise ConfigError("[api] enabled needs [journal] enabled (the API serves the journal)")
        settings = ApiSettings(
            token=load_or_create_token(config.api_token_file), journal_path=str(self.journal.store.path),
            alerts_path=None if self.alerts is None else str(self.alerts.store.path),
            charger=dataclasses.asdict(config.charger), rate_limit_per_s=config.api.rate_limit_per_s,
            log_level=config.logging.level, state_dir=str(config.state_dir),
            runtime_dir=str(config.paths.runtime_dir))
        host, port = config.api.host_port
        try:
            return ApiProcess(host, port, settings)
        except OSError as exc:
            raise StartError(api_address_problem(config.api.listen, config.source, exc)) from None

    # -- the bridge's own messages -----------------------------------------------------------------
    def _send_own(self, topic: str, payload: bytes) -> str | None:
        """Publish a message of the bridge's own (not an answer); Josev envelopes are journaled as `out`,
        with whether the link took them."""
        refused = self.mqtt.publish(topic, payload)
        if self.journal is not None and topic == self.config.mqtt.josev_response_topic:
            self.journal.record(_outgoing_entry(time.time_ns() // 1000, topic, payload, refused))
        return refused

    # -- lifecycle ---------------------------------------------------------------------------------
    def run(self) -> int:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: every thread's stack to the log
        gc.freeze()  # what start-up built (schemas, validators, definitions) lives forever: keep it out of
        # the collector's full passes, which otherwise walk it again and again under a flood of requests
        if self.journal is not None:
            self.journal.start()
        if self.export is not None:
            self.export.start()
        self.mqtt.start()
        self.serial.start()
        if self.api is not None:
            self.api.start()
        log.info("josev-bridge %s started: broker %s:%d, MCU %s, state %s, get_event_timestamp %s",
                 __version__, self.config.mqtt.host, self.config.mqtt.port, self.config.serial.url,
                 self.config.state_dir, "enabled" if self.timestamps.enabled() else "disabled")
        self.notifier.ready()
        try:
            self._housekeeping()
        finally:
            self.notifier.stopping()
            if self.api is not None:
                self.api.stop()
            self.serial.stop()
            self.mqtt.stop()
            if self.export is not None:
                self.export.stop()
            if self.journal is not None:
                self.journal.stop()
            self.device_model.close()
            if self.alerts is not None:
                self.alerts.close()
            log.info("josev-bridge stopped")
        return 0

    def stop(self) -> None:
        self._stop.set()

    def _housekeeping(self) -> None:
        interval = self.notifier.watchdog_interval()
        step = min(HOUSEKEEPING_INTERVAL, interval) if interval else HOUSEKEEPING_INTERVAL
        while not self._stop.wait(step):
            if self._reload.is_set():
                self._reload.clear()
                self._do_reload()
            self._log_device_model_changes()
            self._check_host_clock()
            self._journal_link_events()
            self._tick_alerts()
            self.intake.log_unlogged()
            if self.api is not None and not self._stop.is_set():
                self.api.poll()  # an API process that exited: one line, then started again after a backoff
            self._write_status()
            problem = self.health_problem()
            if problem is None:
                self.notifier.watchdog()
                line = self.status_line()
                if line != self._status_sent:
                    self.notifier.status(line)
                    self._status_sent = line
            else:
                log.error("unhealthy, withholding the watchdog ping: %s", problem)

    def _write_status(self) -> None:
        """Refresh status.json when something changed, and at least every 2 s as a heartbeat."""
        doc = status_report.build(self)
        last, at = self._status_written
        if doc == last and time.monotonic() - at < 2.0:
            return
        try:
            self._status_file.save({**doc, **status_file.stamp()})
            self._status_written = (doc, time.monotonic())
        except OSError as exc:
            log.debug("cannot write %s: %s", self._status_file.path, exc)

    def health_problem(self) -> str | None:
        """None when every thread the bridge needs is alive and turning."""
        if not self.mqtt.alive():
            return "the MQTT network thread has ended"
        if not self.serial.alive():
            return "the serial thread has ended"
        if self.journal is not None and not self.journal.alive():
            return "the journal thread has ended"
        if self.export is not None and not self.export.alive():
            return "the export thread has ended"
        stalled = time.monotonic() - self.serial.heartbeat
        if stalled > SERIAL_STALL_LIMIT:
            return f"the serial loop has not turned for {stalled:.1f} s"
        return None

    def status_line(self) -> str:
        return (f"broker {'up' if self.mqtt.connected.is_set() else 'down'}, MCU link {self.serial.state.value}, "
                f"answered {self.answers.answered}, silent {self.answers.silent}, not sent {self.answers.not_sent}")

    def _log_device_model_changes(self) -> None:
        """Log every change made since the last tick, by whoever made it (CLI user or csms).

        The change itself is already in force: readers see it at their next use. This only reads
        the audit rows after a cursor (an indexed query), in the tick that exists for the watchdog.
        """
        for change in self.device_model.history(after_id=self._audit_cursor, limit=100):
            self._audit_cursor = change.id
            log.warning("device model: %s.%s %s changed %s -> %s (source %s, by %s); applied",
                        change.component, change.variable, change.attribute, change.old_value, change.new_value,
                        change.source, change.user)
            self._journal_event(DEVICE_MODEL_CHANGE, {
                "component": change.component, "variable": change.variable, "attribute": change.attribute,
                "oldValue": change.old_value, "newValue": change.new_value, "source": change.source,
                "user": change.user})

    def _check_host_clock(self) -> None:
        """A step of the board's clock or a change of its sync status: logged (host_clock), and saved
        with the edges so that a reboot keeps the latest time line for them."""
        synced = self.host_clock.synchronised
        step_us = self.host_clock.check()
        if step_us is not None or self.host_clock.synchronised != synced:
            self.ingest.on_host_clock_change()

    def _tick_alerts(self) -> None:
        """The engine's clock: holds expire, and the MCU link's silence becomes offlineCharger.

        Last heard is the last frame's arrival, or the bridge's start when the MCU was never heard:
        an MCU dead since boot is an outage too. It is a time.monotonic() time: the alert service
        measures the silence on that clock, so a step of the board's clock (NTP arriving late) is
        not an outage, even one made between two readings here.
        """
        if self.alerts is None:
            return
        self.alerts.tick(round((self.serial.last_frame_at or self._started_at) * 1e6))

    def _journal_event(self, kind: str, payload: dict) -> None:
        if self.journal is not None:
            self.journal.record(JournalEntry(time.time_ns() // 1000, Direction.EVENT, kind, payload=payload))

    def _journal_edge(self, edge: Edge) -> None:
        """Every condition edge, as the ingest applies it (serial thread; a queue append): the only
        history of the conditions (edges.json keeps the last rise and fall), for the status page's
        timeline. `created_us` is the edge's own time, so a window of the journal is a window of edges."""
        assert self.journal is not None
        self.journal.record(JournalEntry(edge.time_us, Direction.EVENT, MCU_EDGE, payload={
            "evseId": edge.evse_id, "condition": edge.condition.value, "rising": edge.rising,
            "eventType": edge.event_type.value}))

    def _journal_link_events(self) -> None:
        """MCU link state, MCU boot and lost records, as seen at this tick (the log has the exact lines)."""
        seen = {"state": self.serial.state.value, "boot_id": self.ingest.tracker.boot_id,
                "lost_records": self.ingest.counters.lost_records}
        if seen == self._link_seen:
            return
        before, self._link_seen = self._link_seen, seen
        payload: dict[str, object] = {"state": seen["state"],
                   "mcuBootId": None if seen["boot_id"] is None else f"{seen['boot_id']:08x}",
                   "firmware": self.ingest.mcu_firmware,
                   "lostRecords": seen["lost_records"]}
        if before:
            payload["changed"] = sorted(k for k in seen if seen[k] != before.get(k))
        self._journal_event(MCU_LINK, payload)

    def _do_reload(self) -> None:
        """SIGHUP: re-read the config; apply what can change live, name what needs a restart."""
        self.notifier.reloading()
        try:
            new = load(self.config.source)
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            self.notifier.ready()
            return
        applied, restart = reload_plan(self.config, new)
        if restart:
            log.warning("reload: %s changed; not applied until a restart (systemctl restart josev-bridge)",
                        ", ".join(f"[{s}]" for s in restart))
        # the sections not applied stay as they run: status shows them, and the next reload names them again
        self.config = dataclasses.replace(new, **{s: getattr(self.config, s) for s in restart})
        logging.getLogger().setLevel(new.logging.level)
        if self.api is not None:
            self.api.set_log_level(new.logging.level)  # the API process logs at the same level
        self.timestamps.reconfigure(self.config)
        log.info("configuration reloaded from %s; %s", new.source,
                 f"applied: {', '.join(f'[{s}]' for s in applied)}" if applied else "nothing to apply")
        self.notifier.ready()


def _outgoing_entry(created_us: int, topic: str, payload: bytes, refused: str | None) -> JournalEntry:
    """A message the bridge sent on its own (notify_event): what it was, and whether the link took it."""
    body = json.loads(payload)
    return JournalEntry(created_us, Direction.OUT, body.get("name", "unknown"), topic, body.get("id"),
                        body.get("data"), None if refused is None else NoAnswer.NOT_SENT,
                        note=None if refused is None else f"the MQTT link did not take it ({refused})")


class StartError(Exception):
    """A start-up failure whose message says it all (what, which setting, the fix), and that may heal
    by itself (exit 1: systemd tries again)."""


# errno of binding the API's address -> (what it means, what to do)
BIND_PROBLEMS = {errno.EADDRINUSE: ("is in use by another process", "stop it or change [api] listen"),
                 errno.EADDRNOTAVAIL: ("is not an address of this host", "change [api] listen")}


def api_address_problem(listen: str, source: str, exc: OSError) -> str:
    """`the API address 127.0.0.1:8080 ([api] listen in /etc/josev-bridge/config.toml) is in use by
    another process; stop it or change [api] listen`: the address and where it is set, not only errno's
    words (`[Errno 98] Address already in use` names no port)."""
    what, fix = BIND_PROBLEMS.get(exc.errno or 0, (f"cannot be bound ({exc.strerror or exc})", "change [api] listen"))
    return f"the API address {listen} ([api] listen in {source}) {what}; {fix}"


def run(config_path: str) -> int:
    """The daemon. Exit 2: the configuration must be fixed (the unit stays failed); exit 1: a start-up
    fault that may heal, such as a full or read-only state_dir (systemd tries again)."""
    try:
        config = load(config_path)
    except ConfigError as exc:
        configure_logging("INFO")
        log.error("%s", exc)
        return 2
    configure_logging(config.logging.level)
    try:
        bridge = Bridge(config)
    except StartError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:  # StorageError too: read-only, full, no permission; names the path and errno
        log.error("cannot start: %s; exiting for systemd to restart the bridge", describe(exc))
        return 1
    except ConfigError as exc:  # a file a person must fix (an empty password file): does not heal by itself
        log.error("cannot start: %s", exc)
        return 2
    except (ValueError, sqlite3.Error) as exc:
        log.error("cannot start: %s", exc)
        return 1
    except Exception as exc:  # a bug: still one line in the journal; the stack at DEBUG level
        log.error("cannot start: unexpected %s: %s", type(exc).__name__, exc)
        log.debug("start-up failure", exc_info=True)
        return 1
    return bridge.run()
