"""Journal export against a second, real mosquitto: stopped and restarted mid-stream, TLS, credentials.

A persistent-session subscriber plays the fleet's side: it records every row in order of arrival,
so a broker restart cannot hide a row from it (mosquitto keeps its queue across the restart).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from josev_bridge.adapters.journal_retention import RetentionPolicy
from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.config import ExportConfig
from josev_bridge.core.journal_entry import Direction, JournalEntry, NoAnswer, to_row
from josev_bridge.harness.broker import Mosquitto, free_port, wait_for_port
from josev_bridge.harness.waiting import wait_until
from josev_bridge.services import journal_export
from josev_bridge.services.journal import Journal
from josev_bridge.services.journal_export import CURSOR, JournalExporter

IDENTITY = "CP-0042"
FLEET_ID = 42
TOPIC = f"josev-bridge/{IDENTITY}/journal"
BIG = RetentionPolicy(max_age_us=10**15, max_bytes=1 << 30)


class Fleet:
    """The fleet's consumer: a persistent MQTT 5 session on the upstream broker, QoS 1."""

    def __init__(self, port: int, *, tls_ca: str | None = None, username: str | None = None,
                 password: str | None = None) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.rows: list[dict] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-{os.getpid()}-{port}",
                                  protocol=mqtt.MQTTv5)
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = lambda c, *a: c.subscribe("josev-bridge/+/journal", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # survives the broker restart with the queue it holds for us
        self.client.connect("127.0.0.1", port, 30, clean_start=False, properties=props)
        self.client.loop_start()
        assert self._subscribed.wait(10), "fleet subscriber not subscribed"

    def _on_message(self, client, userdata, message) -> None:
        self.messages.append(message)
        self.rows.append(json.loads(message.payload))

    def first_arrivals(self) -> list[int]:
        seen: set[int] = set()
        order = []
        for row in list(self.rows):
            if row["id"] not in seen:
                seen.add(row["id"])
                order.append(row["id"])
        return order

    def ids(self) -> set[int]:
        return {row["id"] for row in list(self.rows)}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def entry(i: int) -> JournalEntry:
    return JournalEntry(1_760_000_000_000_000 + i * 1000, Direction.IN, "get_event_timestamp", "ocpp/cs",
                        f"req-{i}", {"event_type": "TxEventStart", "trigger_reason": "EVConnected"},
                        {"timestamp": "2026-02-17T10:20:30.123Z"} if i % 3 else NoAnswer.NO_EVENT_RECORDED,
                        600 if i % 3 else None)


def export_config(port: int, **overrides) -> ExportConfig:
    values = dict(enabled=True, host="127.0.0.1", port=port, tls=False, reconnect_min_delay=0.05,
                  reconnect_max_delay=0.3, connect_timeout=5.0, max_rows_per_s=0.0)
    values.update(overrides)
    return ExportConfig(**values)


def make_exporter(cfg: ExportConfig, journal_path: Path) -> JournalExporter:
    return JournalExporter(cfg, journal_path, identity=IDENTITY, fleet_id=FLEET_ID,
                           client_id=f"josev-bridge-export-{IDENTITY}", topic=TOPIC)


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "state" / "journal.sqlite", BIG)
    j.start()
    yield j
    j.stop()


@pytest.fixture
def stoppers():
    """Things to stop at the end of a test, last first, even when it fails."""
    items: list = []
    yield items
    for item in reversed(items):
        (item.stop if hasattr(item, "stop") else item.close)()


def record(journal: Journal, start: int, count: int) -> None:
    for i in range(start, start + count):
        journal.record(entry(i))


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_upstream_restart_mid_stream_delivers_every_row_in_order(upstream, journal, stoppers, protocol):
    fleet = Fleet(upstream.port)
    stoppers.append(fleet)
    exporter = make_exporter(export_config(upstream.port, protocol=protocol), journal.store.path)
    journal.add_listener(exporter.notify)
    exporter.start()
    stoppers.append(exporter)

    first, while_down = 3000, 200
    record(journal, 1, first)
    wait_until(lambda: len(fleet.ids()) >= 300, 20, "the first rows at the fleet")
    upstream.stop()
    assert len(fleet.ids()) < first, "the broker must go away mid-stream for this test to mean anything"
    wait_until(lambda: not exporter.connected, 10, "the exporter to notice the broker is gone")
    before_down = exporter.watermark
    record(journal, first + 1, while_down)
    wait_until(lambda: journal.last_id == first + while_down, 10, "rows journaled while the broker is down")
    assert exporter.watermark == before_down  # nothing can be acknowledged while it is down

    upstream.start()  # same port, same persistence directory
    total = first + while_down
    wait_until(lambda: len(fleet.ids()) == total, 30, f"all {total} rows at the fleet")
    assert fleet.first_arrivals() == list(range(1, total + 1))  # every row, in order of first arrival
    wait_until(lambda: exporter.watermark == total, 10, "the watermark to reach the last row")
    assert exporter.counters.connections >= 2
    assert exporter.counters.acked >= total
    assert exporter.counters.lost_to_retention == 0
    assert exporter.status(journal.last_id)["backlog"] == 0
    wait_until(lambda: JournalStore(journal.store.path, readonly=True).get_cursor(CURSOR) == total, 5,
               "the watermark saved in the journal file")


def test_payload_is_the_flipturn_row_on_the_per_charger_topic(upstream, journal, stoppers):
    fleet = Fleet(upstream.port)
    stoppers.append(fleet)
    record(journal, 1, 3)
    wait_until(lambda: journal.last_id == 3, 5, "three journaled rows")
    exporter = make_exporter(export_config(upstream.port), journal.store.path)
    exporter.start()
    stoppers.append(exporter)
    wait_until(lambda: len(fleet.rows) >= 3, 10, "three rows at the fleet")
    stored = journal.store.after_id(0)
    for message, row, s in zip(fleet.messages, fleet.rows, stored):
        assert message.topic == TOPIC
        assert message.qos == 1
        assert row == to_row(s.id, s.entry, IDENTITY, FLEET_ID)
        assert message.properties.ContentType == "application/json"
    assert fleet.rows[2]["messageResponse"] == "NoEventRecorded"
    assert fleet.rows[0]["chargerId"] == FLEET_ID and fleet.rows[0]["ocppChargerIdentity"] == IDENTITY


def saved_watermark(path: Path) -> int:
    reader = JournalStore(path, readonly=True)
    try:
        return reader.get_cursor(CURSOR)
    finally:
        reader.close()


def test_watermark_survives_an_exporter_restart(upstream, journal, stoppers, monkeypatch):
    monkeypatch.setattr(journal_export, "PERSIST_INTERVAL", 3600.0)  # only the save at stop can persist it
    monkeypatch.setattr(journal_export, "PERSIST_ROWS", 10**9)
    fleet = Fleet(upstream.port)
    stoppers.append(fleet)
    cfg = export_config(upstream.port)
    exporter = make_exporter(cfg, journal.store.path)
    journal.add_listener(exporter.notify)
    exporter.start()
    record(journal, 1, 100)
    wait_until(lambda: exporter.watermark == 100, 10, "100 rows acknowledged")
    wait_until(lambda: len(fleet.ids()) == 100, 10, "100 rows at the fleet")  # PUBACK comes before delivery
    exporter.stop()
    assert not exporter.alive()
    assert saved_watermark(journal.store.path) == 100

    record(journal, 101, 50)  # journaled while no exporter runs
    wait_until(lambda: journal.last_id == 150, 5, "150 journaled rows")
    arrived_before = len(fleet.rows)
    again = make_exporter(cfg, journal.store.path)
    assert again.watermark == 100  # read back from the journal file
    journal.add_listener(again.notify)
    again.start()
    stoppers.append(again)
    wait_until(lambda: len(fleet.ids()) == 150, 10, "rows 101..150 at the fleet")
    after_restart = [row["id"] for row in fleet.rows[arrived_before:]]
    assert after_restart == list(range(101, 151))  # none of 1..100 sent again, none missing
    assert fleet.first_arrivals() == list(range(1, 151))


def test_rows_deleted_by_retention_before_export_are_counted_and_logged(upstream, journal, stoppers, caplog):
    fleet = Fleet(upstream.port)
    stoppers.append(fleet)
    record(journal, 1, 100)
    wait_until(lambda: journal.last_id == 100, 5, "100 journaled rows")
    retention = JournalStore(journal.store.path)
    assert retention.delete_oldest(30) == 30  # as the size bound would, before the uplink ever came up
    retention.close()
    caplog.set_level(logging.WARNING, logger="josev_bridge.export")
    exporter = make_exporter(export_config(upstream.port), journal.store.path)
    exporter.start()
    stoppers.append(exporter)
    wait_until(lambda: exporter.watermark == 100, 10, "the surviving rows acknowledged")
    wait_until(lambda: len(fleet.ids()) == 70, 10, "the surviving rows at the fleet")
    assert fleet.first_arrivals() == list(range(31, 101))
    assert exporter.counters.lost_to_retention == 30
    assert "30 journal rows (ids 1..30) were deleted by retention" in caplog.text


def test_rows_retention_deletes_during_an_outage_are_counted_while_it_lasts(tmp_path, journal, stoppers):
    """status must show the loss during the outage, not only once the uplink is back."""
    record(journal, 1, 100)
    wait_until(lambda: journal.last_id == 100, 5, "100 journaled rows")
    exporter = make_exporter(export_config(free_port()), journal.store.path)  # nothing listens there
    exporter.start()
    stoppers.append(exporter)
    retention = JournalStore(journal.store.path)
    assert retention.delete_oldest(40) == 40
    retention.close()
    wait_until(lambda: exporter.counters.lost_to_retention == 40, 10, "the 40 deleted rows counted")
    assert not exporter.connected
    retention = JournalStore(journal.store.path)
    assert retention.delete_oldest(10) == 10
    retention.close()
    wait_until(lambda: exporter.counters.lost_to_retention == 50, 10, "10 more, not counted twice")


@pytest.mark.e2e  # starts mosquitto
def test_unreachable_broker_backs_off_and_delivers_once_it_appears(tmp_path, journal, stoppers, caplog):
    caplog.set_level(logging.DEBUG, logger="josev_bridge.export")
    port = free_port()
    exporter = make_exporter(export_config(port), journal.store.path)
    journal.add_listener(exporter.notify)
    exporter.start()
    stoppers.append(exporter)
    record(journal, 1, 20)
    wait_until(lambda: exporter.counters.connect_failures >= 5, 10, "failed connection attempts")
    assert exporter.watermark == 0 and not exporter.connected
    delays = [float(r.getMessage().split()[-2]) for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert delays[:5] == [0.05, 0.1, 0.2, 0.3, 0.3]  # doubling from reconnect_min_delay, capped at the max
    assert sum("cannot connect" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING) == 1
    assert "cannot connect" in exporter.status(journal.last_id)["last_error"]
    assert exporter.status(journal.last_id)["backlog"] == 20
    broker = Mosquitto(tmp_path / "late", port=port).start()
    stoppers.append(broker)
    fleet = Fleet(port)
    stoppers.append(fleet)
    wait_until(lambda: exporter.watermark == 20, 10, "the backlog delivered")
    assert exporter.status(journal.last_id)["last_error"] is None


# -- TLS and credentials ----------------------------------------------------------------------------

def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1, made with openssl."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=test fleet CA", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "san.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=d)
    return d


class TlsMosquitto(Mosquitto):
    """The harness broker with a TLS listener and a password file instead of anonymous access."""

    def __init__(self, workdir: Path, pki: Path, users: dict[str, str]) -> None:
        super().__init__(workdir)
        self.pki = pki
        self.users = users

    def start(self) -> TlsMosquitto:
        passwd = self.workdir / "passwd"
        passwd.write_text("")
        for user, password in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                           capture_output=True, timeout=30)
        lines = [f"listener {self.port} 127.0.0.1", f"cafile {self.pki / 'ca.crt'}",
                 f"certfile {self.pki / 'server.crt'}", f"keyfile {self.pki / 'server.key'}",
                 "allow_anonymous false", f"password_file {passwd}", f"log_dest file {self.log}",
                 f"persistence_location {self.workdir}/"]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("set_tcp_nodelay true\nmax_inflight_messages 1000\n" + "\n".join(lines) + "\n")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 10, self.proc)
        return self


def secret(path: Path, text: str) -> str:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


@pytest.mark.e2e  # starts a TLS mosquitto
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_tls_with_username_and_password_file(tmp_path, pki, journal, stoppers, protocol):
    broker = TlsMosquitto(tmp_path / "tls-broker", pki, {"cp-0042": "s3cret", "fleet": "f1eet"}).start()
    stoppers.append(broker)
    fleet = Fleet(broker.port, tls_ca=str(pki / "ca.crt"), username="fleet", password="f1eet")
    stoppers.append(fleet)
    cfg = export_config(broker.port, tls=True, tls_ca=str(pki / "ca.crt"), username="cp-0042",
                        password_file=secret(tmp_path / "export.password", "s3cret"), protocol=protocol)
    exporter = make_exporter(cfg, journal.store.path)
    journal.add_listener(exporter.notify)
    exporter.start()
    stoppers.append(exporter)
    record(journal, 1, 10)
    wait_until(lambda: len(fleet.ids()) == 10, 15, "ten rows over TLS")
    assert fleet.first_arrivals() == list(range(1, 11))


@pytest.mark.e2e  # starts a TLS mosquitto
def test_wrong_password_is_refused_and_nothing_is_marked_delivered(tmp_path, pki, journal, stoppers):
    broker = TlsMosquitto(tmp_path / "tls-broker", pki, {"cp-0042": "s3cret"}).start()
    stoppers.append(broker)
    cfg = export_config(broker.port, tls=True, tls_ca=str(pki / "ca.crt"), username="cp-0042",
                        password_file=secret(tmp_path / "export.password", "wrong"))
    exporter = make_exporter(cfg, journal.store.path)
    journal.add_listener(exporter.notify)
    exporter.start()
    stoppers.append(exporter)
    record(journal, 1, 5)
    wait_until(lambda: exporter.counters.connect_failures >= 2, 10, "refused connections")
    assert "refused the connection" in exporter.last_error
    assert exporter.watermark == 0 and exporter.counters.published == 0


@pytest.mark.e2e  # starts a TLS mosquitto
def test_untrusted_server_certificate_is_not_accepted(tmp_path, pki, journal, stoppers):
    broker = TlsMosquitto(tmp_path / "tls-broker", pki, {"cp-0042": "s3cret"}).start()
    stoppers.append(broker)
    cfg = export_config(broker.port, tls=True, username="cp-0042",  # the system CA store: does not know our CA
                        password_file=secret(tmp_path / "export.password", "s3cret"))
    exporter = make_exporter(cfg, journal.store.path)
    exporter.start()
    stoppers.append(exporter)
    wait_until(lambda: exporter.counters.connect_failures >= 1, 10, "a failed TLS handshake")
    assert "CERTIFICATE_VERIFY_FAILED" in exporter.last_error
    assert exporter.counters.connections == 0


def test_bad_tls_files_and_open_password_file_stop_the_start(tmp_path, pki):
    with pytest.raises(ValueError, match="TLS files"):
        make_exporter(export_config(1883, tls=True, tls_ca=str(tmp_path / "missing.crt")), tmp_path / "j.sqlite")
    loose = tmp_path / "loose.password"
    loose.write_text("x")
    loose.chmod(0o644)
    with pytest.raises(ValueError, match="readable by group or others"):
        make_exporter(export_config(1883, username="u", password_file=str(loose)), tmp_path / "j.sqlite")


def test_the_row_budget_spreads_a_backlog_over_time(upstream, journal, stoppers):
    fleet = Fleet(upstream.port)
    stoppers.append(fleet)
    exporter = make_exporter(export_config(upstream.port, max_rows_per_s=100.0), journal.store.path)
    journal.add_listener(exporter.notify)
    record(journal, 1, 300)
    wait_until(lambda: journal.last_id == 300, 5, "300 journaled rows")
    started = time.monotonic()
    exporter.start()
    stoppers.append(exporter)
    wait_until(lambda: len(fleet.ids()) == 300, 15, "300 rows at the fleet")
    # a burst of one second's worth, then 100 rows/s: 300 rows take about two seconds, not milliseconds
    assert time.monotonic() - started >= 1.5
    assert fleet.first_arrivals() == list(range(1, 301))
