"""SystemdNotifier against a real AF_UNIX datagram socket, and the shipped systemd/mosquitto files.

The notifier is tested twice: through systemd-python (skipped when it is not installed) and
through the built-in fallback that writes the datagram itself.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from josev_bridge.adapters import systemd_notify
from josev_bridge.adapters.systemd_notify import SystemdNotifier
from josev_bridge.harness.unit_file import last, parse_unit, words

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO / "systemd"
RECEIVE_TIMEOUT = 5.0  # a deadline for a datagram that should already be queued

HAVE_LIBRARY = systemd_notify._sd_daemon is not None


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(
    params=[
        pytest.param(True, id="systemd-python",
                     marks=pytest.mark.skipif(not HAVE_LIBRARY, reason="systemd-python not installed")),
        pytest.param(False, id="fallback"),
    ]
)
def notifier(request) -> SystemdNotifier:
    n = SystemdNotifier(use_library=request.param)
    assert n.uses_library is request.param
    return n


def _bind_datagram(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(RECEIVE_TIMEOUT)
    return sock


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A datagram socket bound in tmp_path and exported as NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    short_dir = None
    if len(str(path).encode()) >= 100:  # sun_path is 108 bytes; a deep basetemp would not fit
        short_dir = tempfile.mkdtemp(prefix="sdn")
        path = Path(short_dir) / "notify.sock"
    sock = _bind_datagram(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()
    if short_dir:
        shutil.rmtree(short_dir, ignore_errors=True)


def _receive(sock: socket.socket) -> list[str]:
    data = sock.recv(4096)
    return data.decode().split("\n")


def _assert_nothing_queued(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        with pytest.raises(BlockingIOError):
            sock.recv(4096)
    finally:
        sock.settimeout(RECEIVE_TIMEOUT)


# --- the messages --------------------------------------------------------------------------------


def test_ready(notifier, notify_socket):
    assert notifier.ready() is True
    assert _receive(notify_socket) == ["READY=1"]


def test_ready_with_status_is_one_message(notifier, notify_socket):
    assert notifier.ready(status="serving\nMCU online")
    assert _receive(notify_socket) == ["READY=1", "STATUS=serving MCU online"]


def test_reloading_carries_monotonic_usec(notifier, notify_socket):
    before = time.monotonic_ns() // 1000
    assert notifier.reloading()
    after = time.monotonic_ns() // 1000
    lines = _receive(notify_socket)
    assert lines[0] == "RELOADING=1"
    fields = dict(line.split("=", 1) for line in lines)
    assert before <= int(fields["MONOTONIC_USEC"]) <= after
    # the reload completes with READY=1, as a separate message
    assert notifier.ready()
    assert _receive(notify_socket) == ["READY=1"]


def test_watchdog(notifier, notify_socket):
    assert notifier.watchdog()
    assert _receive(notify_socket) == ["WATCHDOG=1"]


def test_status_is_a_single_line(notifier, notify_socket):
    assert notifier.status("MQTT reconnecting\r\n(attempt 3)")
    assert _receive(notify_socket) == ["STATUS=MQTT reconnecting (attempt 3)"]


def test_stopping(notifier, notify_socket):
    assert notifier.stopping()
    assert _receive(notify_socket) == ["STOPPING=1"]


def test_abstract_socket(notifier, monkeypatch):
    name = f"josev-bridge-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = _bind_datagram("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notifier.ready()
        assert _receive(sock) == ["READY=1"]
    finally:
        sock.close()


def test_messages_arrive_in_order(notifier, notify_socket):
    notifier.status("starting")
    notifier.ready()
    notifier.watchdog()
    notifier.stopping()
    got = [_receive(notify_socket)[0] for _ in range(4)]
    assert got == ["STATUS=starting", "READY=1", "WATCHDOG=1", "STOPPING=1"]


# --- never raising -------------------------------------------------------------------------------


def test_without_notify_socket_everything_is_a_quiet_no_op(notifier, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert SystemdNotifier.enabled() is False
    assert notifier.ready() is False
    assert notifier.ready(status="x") is False
    assert notifier.reloading() is False
    assert notifier.stopping() is False
    assert notifier.status("x") is False
    assert notifier.watchdog() is False


def test_unreachable_socket_is_logged_not_raised(notifier, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens-here"))
    with caplog.at_level("DEBUG", logger="josev_bridge.systemd"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
    assert any("READY=1" in r.getMessage() for r in caplog.records)


def test_unsupported_address_is_not_an_error(notifier, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert notifier.ready() is False


def test_library_failure_is_not_raised(monkeypatch, notify_socket):
    class Broken:
        @staticmethod
        def notify(message):
            raise RuntimeError("boom")

    monkeypatch.setattr(systemd_notify, "_sd_daemon", Broken)
    assert SystemdNotifier(use_library=True).uses_library
    assert SystemdNotifier(use_library=True).ready() is False


def test_default_never_blocks_when_the_manager_does_not_read(notify_socket):
    """An unread notify queue must not freeze the daemon: the default path drops and reports."""
    n = SystemdNotifier()
    assert not n.uses_library
    results = [n.status("x" * 200) for _ in range(5000)]  # far beyond the socket's queue
    assert results[0] is True and results[-1] is False


def test_missing_library_falls_back(monkeypatch, notify_socket):
    monkeypatch.setattr(systemd_notify, "_sd_daemon", None)
    for n in (SystemdNotifier(), SystemdNotifier(use_library=True)):
        assert not n.uses_library
        assert n.ready()
        assert _receive(notify_socket) == ["READY=1"]


def test_enabled_follows_the_environment(notify_socket, monkeypatch):
    assert SystemdNotifier.enabled()
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert not SystemdNotifier.enabled()


# --- watchdog interval ---------------------------------------------------------------------------


@pytest.fixture
def clean_watchdog_env(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    return monkeypatch


def test_watchdog_interval_is_half_of_watchdog_usec(clean_watchdog_env):
    clean_watchdog_env.setenv("WATCHDOG_USEC", "10000000")  # WatchdogSec=10s
    assert SystemdNotifier.watchdog_interval() == pytest.approx(5.0)
    clean_watchdog_env.setenv("WATCHDOG_USEC", "3000")
    assert SystemdNotifier.watchdog_interval() == pytest.approx(0.0015)


def test_watchdog_interval_for_our_own_pid(clean_watchdog_env):
    clean_watchdog_env.setenv("WATCHDOG_USEC", "10000000")
    clean_watchdog_env.setenv("WATCHDOG_PID", str(os.getpid()))
    assert SystemdNotifier.watchdog_interval() == pytest.approx(5.0)


def test_watchdog_interval_for_another_pid_is_none(clean_watchdog_env):
    clean_watchdog_env.setenv("WATCHDOG_USEC", "10000000")
    clean_watchdog_env.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert SystemdNotifier.watchdog_interval() is None


@pytest.mark.parametrize("usec", [None, "", "0", "-5", "ten", "1.5"])
def test_watchdog_interval_without_a_usable_watchdog_is_none(clean_watchdog_env, usec):
    if usec is not None:
        clean_watchdog_env.setenv("WATCHDOG_USEC", usec)
    assert SystemdNotifier.watchdog_interval() is None


def test_watchdog_interval_with_garbage_pid_is_none(clean_watchdog_env):
    clean_watchdog_env.setenv("WATCHDOG_USEC", "10000000")
    clean_watchdog_env.setenv("WATCHDOG_PID", "me")
    assert SystemdNotifier.watchdog_interval() is None


# --- the shipped unit files ----------------------------------------------------------------------


_YES = {"yes", "true", "on", "1"}


def test_bridge_unit_lifecycle():
    unit = parse_unit(SYSTEMD_DIR / "josev-bridge.service")
    svc, u = unit["Service"], unit["Unit"]
    assert last(svc, "Type") == "notify"
    assert last(svc, "NotifyAccess") == "main"
    assert last(svc, "WatchdogSec")
    assert last(svc, "ExecStart").split()[1:] == ["run", "--config", "/etc/josev-bridge/config.toml"]
    assert last(svc, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert last(svc, "Restart") == "on-failure"
    assert last(svc, "RestartSec")
    assert last(u, "StartLimitIntervalSec") == "0"  # a storage fault that heals must not leave it failed
    assert last(svc, "RestartPreventExitStatus") == "2"  # ... a broken configuration must
    assert "mosquitto.service" in words(u, "Wants")
    assert "mosquitto.service" in words(u, "After")
    assert "mosquitto.service" not in words(u, "Requires") + words(u, "BindsTo")
    assert "multi-user.target" in words(unit["Install"], "WantedBy")


def test_bridge_unit_identity_and_directories():
    svc = parse_unit(SYSTEMD_DIR / "josev-bridge.service")["Service"]
    assert last(svc, "User") == "josev-bridge"
    assert last(svc, "Group") == "josev-bridge"
    assert "dialout" in words(svc, "SupplementaryGroups")
    assert last(svc, "StateDirectory") == "josev-bridge"
    assert last(svc, "StateDirectoryMode") == "2770"  # group josev-bridge: technicians may change values
    assert last(svc, "ConfigurationDirectory") == "josev-bridge"
    assert last(svc, "RuntimeDirectory") == "josev-bridge"
    assert last(svc, "UMask") == "0077"
    assert last(svc, "DynamicUser") in (None, "no")


def test_bridge_unit_hardening():
    svc = parse_unit(SYSTEMD_DIR / "josev-bridge.service")["Service"]
    assert last(svc, "ProtectSystem") == "strict"
    for key in ("ProtectHome", "PrivateTmp", "NoNewPrivileges", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
                "ProtectHostname", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
                "LockPersonality", "MemoryDenyWriteExecute"):
        assert last(svc, key) in _YES, key
    assert last(svc, "SystemCallArchitectures") == "native"
    assert set(words(svc, "RestrictAddressFamilies")) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    filters = svc["SystemCallFilter"]
    assert "@system-service" in filters
    denied = [f for f in filters if f.startswith("~")]
    assert denied and {"@privileged", "@resources"} <= set(" ".join(denied)[1:].split())
    assert last(svc, "CapabilityBoundingSet") == ""
    # the clock is read (adjtimex, modes 0: is it synchronised?), never set: ProtectClock would refuse
    # the reads too, and no capability leaves the kernel able to refuse the writes
    assert (last(svc, "ProtectClock") or "no") not in _YES
    assert {"adjtimex", "clock_adjtime", "clock_adjtime64"} <= set(words(svc, "SystemCallFilter"))
    assert last(svc, "MemoryMax")
    assert words(svc, "IPAddressDeny") == ["any"]
    assert "localhost" in words(svc, "IPAddressAllow")


def test_bridge_unit_reaches_the_uart():
    svc = parse_unit(SYSTEMD_DIR / "josev-bridge.service")["Service"]
    # PrivateDevices=yes would hide every tty; the device cgroup restricts access instead.
    assert (last(svc, "PrivateDevices") or "no") not in _YES
    assert last(svc, "DevicePolicy") == "closed"
    allowed = svc.get("DeviceAllow", [])
    for driver in ("ttyS", "ttyUSB", "ttyACM"):
        assert f"char-{driver} rw" in allowed, driver
    assert "dialout" in words(svc, "SupplementaryGroups")


def test_sim_unit():
    unit = parse_unit(SYSTEMD_DIR / "josev-bridge-sim.service")
    svc = unit["Service"]
    assert last(svc, "Type") == "simple"
    assert last(svc, "ExecStart").split()[1:] == [
        "sim", "--pty-link", "/run/josev-bridge-sim/ttyMCU", "--control", "127.0.0.1:8765"]
    assert last(svc, "RuntimeDirectory") == "josev-bridge-sim"
    # same account as the bridge, so the bridge may open the pty's slave (owned by its opener)
    bridge = parse_unit(SYSTEMD_DIR / "josev-bridge.service")["Service"]
    assert last(svc, "User") == last(bridge, "User")
    assert last(svc, "DevicePolicy") == "closed"
    assert {"/dev/ptmx rw", "char-pts rw"} <= set(svc.get("DeviceAllow", []))
    assert not any(d.startswith("char-tty") for d in svc.get("DeviceAllow", []))
    assert last(svc, "ProtectSystem") == "strict"
    assert last(svc, "NoNewPrivileges") in _YES
    assert last(svc, "CapabilityBoundingSet") == ""
    assert "josev-bridge.service" in words(unit["Unit"], "Before")


# --- the shipped mosquitto configuration ---------------------------------------------------------

MOSQUITTO_CONF = SYSTEMD_DIR / "mosquitto-josev-bridge.conf"


def _mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def _conf_directives() -> list[list[str]]:
    out = []
    for raw in MOSQUITTO_CONF.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append(line.split())
    return out


def test_mosquitto_conf_sets_the_latency_and_throughput_options():
    d = {words[0]: words[1:] for words in _conf_directives()}
    assert d["set_tcp_nodelay"] == ["true"]
    assert int(d["max_inflight_messages"][0]) >= 1000
    assert int(d["max_queued_messages"][0]) >= 10000
    assert d["persistence"] == ["true"]
    assert d["listener"] == ["1883", "127.0.0.1"]
    # Debian's mosquitto.conf sets it; setting it twice stops mosquitto from starting
    assert "persistence_location" not in d


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mqtt_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _connect_packet(version: int) -> bytes:
    variable = _mqtt_string("MQTT") + bytes([version, 0x02]) + struct.pack("!H", 30)  # clean, 30 s
    if version == 5:
        variable += b"\x00"  # no properties
    body = variable + _mqtt_string(f"josev-bridge-test-{version}")
    return bytes([0x10, len(body)]) + body


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "broker closed the connection"
        data += chunk
    return data


def _read_packet(sock: socket.socket) -> tuple[int, bytes]:
    header = _recv_exactly(sock, 1)[0]
    length, shift = 0, 0
    while True:
        byte = _recv_exactly(sock, 1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return header, _recv_exactly(sock, length)


# MQTT v5 CONNACK property identifier -> value size (-1: UTF-8 string; -2: binary data; -3: pair)
_PROPERTY_SIZES = {0x11: 4, 0x12: -1, 0x13: 2, 0x15: -1, 0x16: -2, 0x1A: -1, 0x1C: -1, 0x1F: -1,
                   0x21: 2, 0x22: 2, 0x24: 1, 0x25: 1, 0x26: -3, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1}


def _connack_v5_properties(body: bytes) -> dict[int, object]:
    pos, length, shift = 2, 0, 0
    while True:
        byte = body[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    end, props = pos + length, {}
    while pos < end:
        ident = body[pos]
        pos += 1
        size = _PROPERTY_SIZES[ident]
        if size > 0:
            props[ident] = int.from_bytes(body[pos:pos + size], "big")
            pos += size
        else:
            for _ in range(2 if size == -3 else 1):
                n = struct.unpack_from("!H", body, pos)[0]
                props[ident] = body[pos + 2:pos + 2 + n]
                pos += 2 + n
    return props


def _start_mosquitto(binary: str, tmp_path: Path) -> tuple[subprocess.Popen, int, Path]:
    port = _free_port()
    lines = [" ".join(w) for w in _conf_directives() if w[0] not in ("listener", "persistence_location")]
    lines += [f"listener {port} 127.0.0.1", f"persistence_location {tmp_path}/"]
    if os.geteuid() == 0:
        lines.append("user root")  # else mosquitto, started as root, switches to user "mosquitto"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    log_file = tmp_path / "mosquitto.log"
    with open(log_file, "wb") as log_out:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log_out, stderr=subprocess.STDOUT)
    return proc, port, log_file


def _wait_until_listening(proc: subprocess.Popen, port: int, log_file: Path, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"mosquitto not listening after {deadline_s} s:\n{log_file.read_text()}")
        try:  # paces the poll and notices an early exit (e.g. a configuration error)
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"mosquitto exited with {proc.returncode}:\n{log_file.read_text()}")


@pytest.mark.e2e  # starts mosquitto
def test_mosquitto_starts_with_the_shipped_settings(tmp_path):
    binary = _mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed")
    proc, port, log_file = _start_mosquitto(binary, tmp_path)
    try:
        _wait_until_listening(proc, port, log_file, deadline_s=10.0)
        directives = {w[0]: w[1:] for w in _conf_directives()}
        if directives.get("allow_anonymous") != ["true"]:
            return  # accounts are configured: a bare TCP connection is all we can check here
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(_connect_packet(4))
            assert _read_packet(s) == (0x20, b"\x00\x00"), log_file.read_text()  # accepted
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(_connect_packet(5))
            header, body = _read_packet(s)
            assert header == 0x20 and body[1] == 0x00, log_file.read_text()
            # mosquitto announces max_inflight_messages as its Receive Maximum: the setting is live
            receive_maximum = _connack_v5_properties(body).get(0x21, 65535)
            assert receive_maximum == int(directives["max_inflight_messages"][0])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
