"""The amd64 package as installed, without installing it on this machine: its files unpacked into a
temporary root and run from there with Debian's python3 (the entry point, check-config on the shipped
example, a get_event_timestamp answered against the simulator and a real mosquitto); its unit files
verified by systemd-analyze; its account made by systemd-sysusers in a scratch root; its maintainer
scripts run in a private mount namespace with the systemd helpers stubbed."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from debtools import need

from josev_bridge.core.timestamps import parse_us
from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.broker import Mosquitto
from josev_bridge.harness.waiting import wait_until
from josev_bridge.sim.launcher import start_sim

pytestmark = pytest.mark.e2e  # builds and runs the .deb: not a unit test

LAUNCHER = "usr/bin/josev-bridge"


def configured(example: str, **values: object) -> str:
    """The shipped example with `section.key` values set: the key's line (commented or not) replaced
    in its section, so everything else stays exactly as shipped."""
    lines, section = example.splitlines(), ""
    todo = dict(values)
    for i, line in enumerate(lines):
        if m := re.match(r"^\[([a-z_]+)\]$", line):
            section = m.group(1)
        elif m := re.match(r"^#?([a-z_]+) = ", line):
            key = f"{section}.{m.group(1)}"
            if key in todo:
                lines[i] = f"{m.group(1)} = {json.dumps(todo.pop(key))}"
    assert not todo, f"not in the example: {todo}"
    return "\n".join(lines) + "\n"


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run(root: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(root / LAUNCHER), *args], capture_output=True, text=True, timeout=60, **kwargs)


def test_launcher_runs_debian_python_isolated(unpacked, system_python, tmp_path):
    """Debian's python3 in isolated mode: a josev_bridge (or anything) in the current directory or on
    PYTHONPATH cannot stand in for the installed tree."""
    assert (unpacked / LAUNCHER).read_text().splitlines()[0] == "#!/usr/bin/python3 -IS"
    decoy = tmp_path / "decoy"
    (decoy / "josev_bridge").mkdir(parents=True)
    (decoy / "josev_bridge" / "__init__.py").write_text("raise SystemExit('the decoy was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(decoy), "PYTHONSTARTUP": str(decoy / "nothing.py")}
    done = run(unpacked, "--version", cwd=decoy, env=env)
    assert (done.returncode, done.stdout.strip()) == (0, "josev-bridge 0.1.0"), done.stderr
    # found through a symbolic link too (the tree is located from the real path of the launcher)
    link = tmp_path / "bin" / "josev-bridge"
    link.parent.mkdir()
    link.symlink_to(unpacked / LAUNCHER)
    assert subprocess.run([str(link), "--version"], capture_output=True, text=True).returncode == 0


def test_check_config_on_the_shipped_example(unpacked, system_python, tmp_path):
    example = unpacked / "etc/josev-bridge/config.toml"
    done = run(unpacked, "check-config", "--config", str(example))
    assert done.returncode == 0 and "OK" in done.stdout, done.stdout + done.stderr
    cfg = tmp_path / "config.toml"
    cfg.write_text(configured(example.read_text(), **{"paths.state_dir": str(unpacked / "var/lib/josev-bridge"),
                                                      "paths.runtime_dir": str(unpacked / "run/josev-bridge")}))
    done = run(unpacked, "check-config", "--config", str(cfg))
    assert done.returncode == 0 and str(unpacked / "var/lib/josev-bridge") in done.stdout, done.stdout + done.stderr
    cfg.write_text(cfg.read_text().replace("#port = 1883", "port = 0"))
    done = run(unpacked, "check-config", "--config", str(cfg))
    assert done.returncode == 2 and "[mqtt] port" in done.stderr


def test_installed_bridge_answers_get_event_timestamp(unpacked, system_python, tmp_path):
    """The shipped example, changed only in the broker port, the serial URL and the paths (and the API
    port if 8080 is taken here), runs the installed tree, which answers from the simulated MCU."""
    work = tmp_path / "bridge"
    work.mkdir()
    with Mosquitto(tmp_path / "broker") as broker, start_sim(tmp_path / "sim") as sim:
        changes = {"mqtt.port": broker.port, "serial.url": str(sim.pty_link),
                   "paths.state_dir": str(work / "state"), "paths.runtime_dir": str(work / "run")}
        if not port_free(8080):
            changes["api.listen"] = "127.0.0.1:0"
        cfg = work / "config.toml"
        cfg.write_text(configured((unpacked / "etc/josev-bridge/config.toml").read_text(), **changes))
        bridge = BridgeProcess(work, broker_port=broker.port, serial_url=str(sim.pty_link),
                               command=[str(unpacked / LAUNCHER)], config=cfg)
        # A PYTHONPATH that would break the bridge if anything in it, or a Python child it starts,
        # imported from there instead of the installed tree (the source tree is on this run's path).
        decoy = tmp_path / "decoy" / "josev_bridge"
        decoy.mkdir(parents=True)
        (decoy / "__init__.py").write_text("raise SystemExit('the decoy was imported')\n")
        bridge.start(env={"PYTHONPATH": str(decoy.parent)})
        try:
            status, body = sim.command("plug-connector", {"evse_id": 1})
            assert status == 200, body
            (edge,) = [e for e in body["edges"] if e["trigger_reason"] == "EVConnected"]
            bridge.wait_log(f"EVSE 1 EVConnected TxEventStart at {edge['timestamp']}")
            done = bridge.cli("request", "get-event-timestamp", "--event-type", "TxEventStart",
                              "--trigger-reason", "EVConnected")
            assert done.returncode == 0, done.stdout + done.stderr + bridge.log_text()[-2000:]
            request, answer = (json.loads(line) for line in done.stdout.splitlines())  # what was sent, the answer
            assert (answer["id"], answer["type"]) == (request["id"], "response")
            assert abs(parse_us(answer["data"]["timestamp"]) - parse_us(edge["timestamp"])) <= 1000, (answer, edge)
            # the local API (whichever process serves it) has the answer in the journal
            identity = bridge.sections["charger"]["identity"]
            url = bridge.api_url(f"/api/ocpp-messages?chargerId={identity}&messageType=get_event_timestamp")
            api_request = urllib.request.Request(url, headers={"Authorization": f"Bearer {bridge.api_token()}"})
            rows = wait_until(lambda: json.load(urllib.request.urlopen(api_request, timeout=5))["data"], 10,
                              "the answer in the API's journal")
            assert rows[0]["correlationId"] == request["id"], rows[0]
            # the daemon is Debian's python3 with the bundled compiled dependency from the unpacked tree
            assert os.path.realpath(f"/proc/{bridge.proc.pid}/exe").startswith("/usr/bin/python3")
            maps = Path(f"/proc/{bridge.proc.pid}/maps").read_text()
            assert str(unpacked / "opt/josev-bridge/lib/rpds/") in maps
        finally:
            bridge.stop()


def in_namespace(script: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`script` under sh in a private mount namespace: mounts made there never reach this machine."""
    need("unshare")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-euc", script],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 and "unshare failed" in done.stderr:
        pytest.skip(f"no private mount namespace here: {done.stderr.strip()}")
    return done


def test_systemd_analyze_verify(unpacked, tmp_path):
    """Both units, with the package's /usr/bin laid over this machine's for the check only (an overlay
    in a private mount namespace), so ExecStart= names an executable that exists."""
    need("systemd-analyze")
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    units = " ".join(str(unpacked / "lib/systemd/system" / u) for u in ("josev-bridge.service",
                                                                         "josev-bridge-sim.service"))
    done = in_namespace(f"mount -t overlay overlay -o lowerdir={unpacked}/usr/bin:/usr/bin,"
                        f"upperdir={upper},workdir={work} /usr/bin && test -x /usr/bin/josev-bridge && "
                        f"systemd-analyze verify {units}")
    if done.returncode != 0 and "overlay" in done.stderr and "josev-bridge.service" not in done.stderr:
        pytest.skip(f"no overlay mount here: {done.stderr.strip()}")
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_sysusers_creates_the_account(unpacked, tmp_path):
    """systemd-sysusers on the package's entry, in a scratch root holding a copy of this machine's
    account files: user and group josev-bridge, no login, member of dialout."""
    need("systemd-sysusers")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        if Path("/etc", name).exists():
            shutil.copy(Path("/etc", name), root / "etc" / name)
    shutil.copytree(unpacked / "usr/lib/sysusers.d", root / "usr/lib/sysusers.d")
    done = subprocess.run(["systemd-sysusers", f"--root={root}", "josev-bridge.conf"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    users = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    user = users["josev-bridge"]
    assert int(user[2]) < 1000 and user[5] == "/var/lib/josev-bridge" and user[6].endswith("nologin")
    assert groups["josev-bridge"][2] == user[3]
    assert "josev-bridge" in groups["dialout"][3].split(",")


STUBBED = ("systemd-sysusers", "deb-systemd-helper", "deb-systemd-invoke", "systemctl", "py3compile", "py3clean")


def maintainer_script(unpacked_deb: Path, tmp_path: Path, script: str, *args: str, systemd_running: bool = True,
                      was_enabled: bool = True) -> tuple[list[str], bool]:
    """Run a maintainer script with the helpers it calls stubbed (each stub logs its arguments), in a
    private mount namespace whose /run and /var/lib are empty tmpfs (with /var/lib/josev-bridge holding
    a file): returns the calls and whether the state directory is still there."""
    stubs, log = tmp_path / "stubs", tmp_path / "calls.log"
    stubs.mkdir(exist_ok=True)
    log.write_text("")
    for name in STUBBED:
        status = "1" if name == "deb-systemd-helper" and not was_enabled else "0"
        body = (f'#!/bin/sh\necho "{name} $*" >> {log}\n'
                + (f'case "$*" in *was-enabled*) exit {status};; esac\n' if name == "deb-systemd-helper" else "")
                + "exit 0\n")
        (stubs / name).write_text(body)
        (stubs / name).chmod(0o755)
    kept = tmp_path / "kept"
    kept.unlink(missing_ok=True)
    done = in_namespace(
        "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib && "
        + ("mkdir -p /run/systemd/system && " if systemd_running else "")
        + "mkdir /var/lib/josev-bridge && echo 1 > /var/lib/josev-bridge/device_model.sqlite && "
        + f"PATH={stubs}:/usr/sbin:/usr/bin:/sbin:/bin sh {unpacked_deb / script} {' '.join(args)} && "
        + f"if [ -e /var/lib/josev-bridge/device_model.sqlite ]; then touch {kept}; fi")
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines(), kept.exists()


@pytest.fixture(scope="module")
def control_dir(debs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("control")
    subprocess.run(["dpkg-deb", "-e", str(debs["amd64"]), str(out)], check=True)
    return out


def test_postinst_first_install_enables_and_does_not_start(control_dir, tmp_path):
    calls, _ = maintainer_script(control_dir, tmp_path, "postinst", "configure")
    assert calls[0] == "systemd-sysusers josev-bridge.conf"
    assert "py3compile -p josev-bridge /opt/josev-bridge/lib" in calls
    assert "deb-systemd-helper enable josev-bridge.service" in calls
    assert "systemctl --system daemon-reload" in calls
    assert not [c for c in calls if c.startswith("deb-systemd-invoke") or " start" in c]
    assert not [c for c in calls if "enable josev-bridge-sim" in c]  # the simulator is never enabled


def test_postinst_upgrade_restarts_what_runs(control_dir, tmp_path):
    calls, _ = maintainer_script(control_dir, tmp_path, "postinst", "configure", "0.0.9-1")
    assert calls[-1] == "deb-systemd-invoke try-restart josev-bridge.service josev-bridge-sim.service"


def test_postinst_keeps_an_administrators_disable(control_dir, tmp_path):
    calls, _ = maintainer_script(control_dir, tmp_path, "postinst", "configure", "0.0.9-1", was_enabled=False)
    assert "deb-systemd-helper update-state josev-bridge.service" in calls
    assert "deb-systemd-helper enable josev-bridge.service" not in calls


def test_prerm_stops_on_remove_only(control_dir, tmp_path):
    calls, _ = maintainer_script(control_dir, tmp_path, "prerm", "remove")
    assert calls == ["deb-systemd-invoke stop josev-bridge.service josev-bridge-sim.service",
                     "py3clean -p josev-bridge"]
    calls, _ = maintainer_script(control_dir, tmp_path, "prerm", "upgrade", "0.2.0-1")
    assert calls == ["py3clean -p josev-bridge"]


def test_postrm_keeps_the_state_on_remove_and_deletes_it_on_purge(control_dir, tmp_path):
    calls, kept = maintainer_script(control_dir, tmp_path, "postrm", "remove")
    assert kept and "deb-systemd-helper mask josev-bridge.service josev-bridge-sim.service" in calls
    calls, kept = maintainer_script(control_dir, tmp_path, "postrm", "purge")
    assert not kept and "deb-systemd-helper purge josev-bridge.service josev-bridge-sim.service" in calls
