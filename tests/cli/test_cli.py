"""The technician's CLI, run as a real subprocess against a real state directory."""

import json
import os
import subprocess
import sys

import pytest

from josev_bridge.adapters.log_output import level_of
from josev_bridge.harness.bridge_process import write_config


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path / "c.toml", {"serial": {"url": "/dev/null"},
                                              "paths": {"state_dir": str(tmp_path / "state")}})


def cli(*args):
    return subprocess.run([sys.executable, "-m", "josev_bridge", *args], capture_output=True, text=True, timeout=30)


def test_dm_needs_a_state_dir(config):
    r = cli("dm", "get", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "--config", str(config))
    assert r.returncode == 2 and "does not exist" in r.stderr


@pytest.mark.slow
def test_dm_get_set_history_and_errors(config, tmp_path):
    (tmp_path / "state").mkdir()
    base = ("--config", str(config))
    assert cli("dm", "get", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", *base).stdout.strip() == "true"
    bad = cli("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "yes", *base)
    assert bad.returncode == 1
    assert "EnableGetEventTimestampRequest expects true or false, got 'yes'; nothing changed" in bad.stderr
    unknown = cli("dm", "set", "JOSEV_CTRLR", "Nope", "true", *base)
    assert unknown.returncode == 1 and "unknown variable JOSEV_CTRLR.Nope" in unknown.stderr
    ok = cli("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false", *base)
    assert ok.returncode == 0 and "true -> false" in ok.stdout
    got = json.loads(cli("dm", "get", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "--json", *base).stdout)
    assert got["value"] == "false" and got["source"] == "local"
    history = [json.loads(line) for line in cli("dm", "history", "--json", *base).stdout.splitlines()]
    assert history[0]["new_value"] == "false" and history[0]["old_value"] == "true" and history[0]["user"]
    table = cli("dm", "list", *base).stdout
    assert "EnableGetEventTimestampRequest" in table and "local" in table


@pytest.mark.slow
def test_check_config_ok(config):
    r = cli("check-config", "--config", str(config))
    assert r.returncode == 0 and "OK" in r.stdout


@pytest.mark.slow
def test_check_config_reads_secrets_and_tls_files_without_printing_them(tmp_path):
    secret = tmp_path / "mqtt-password"
    secret.write_text("hunter2-not-for-logs\n")
    secret.chmod(0o644)
    sections = {"serial": {"url": "/dev/null"}, "paths": {"state_dir": str(tmp_path / "state")},
                "mqtt": {"username": "bridge", "password_file": str(secret)},
                "export": {"enabled": True, "host": "fleet.example", "tls_ca": str(tmp_path / "missing-ca.pem")}}
    cfg = write_config(tmp_path / "c.toml", sections)
    loose = cli("check-config", "--config", str(cfg))
    assert loose.returncode == 2 and "[mqtt] password_file" in loose.stderr and "chmod 600" in loose.stderr
    secret.chmod(0o600)
    missing = cli("check-config", "--config", str(cfg))
    assert missing.returncode == 2 and "[export] tls_ca" in missing.stderr and "no such file" in missing.stderr
    (tmp_path / "missing-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    ok = cli("check-config", "--config", str(cfg))
    assert ok.returncode == 0, ok.stderr
    assert all("hunter2" not in r.stdout + r.stderr for r in (loose, missing, ok))


def test_request_reports_an_unreachable_broker(tmp_path):
    cfg = write_config(tmp_path / "c.toml", {"serial": {"url": "/dev/null"}, "mqtt": {"port": 1}})
    r = cli("request", "get-event-timestamp", "--event-type", "TxEventStart", "--trigger-reason", "EVConnected",
            "--config", str(cfg))
    assert r.returncode == 1 and "cannot reach the broker" in r.stderr


@pytest.mark.slow
def test_dm_reset_and_list_json(config, tmp_path):
    (tmp_path / "state").mkdir()
    base = ("--config", str(config))
    assert cli("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false", *base).returncode == 0
    r = cli("dm", "reset", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", *base)
    assert r.returncode == 0 and "false -> true (source default" in r.stdout
    rows = json.loads(cli("dm", "list", "JOSEV_CTRLR", "--json", *base).stdout)
    by_name = {row["variable"]: row for row in rows}
    assert by_name["EnableGetEventTimestampRequest"]["source"] == "default"
    assert by_name["EventTimestampTriggerReasonsSupported"]["mutability"] == "ReadOnly"
    ro = cli("dm", "set", "JOSEV_CTRLR", "EventTimestampTriggerReasonsSupported", "EVConnected", *base)
    assert ro.returncode == 1 and "ReadOnly" in ro.stderr and "device_model/JOSEV_CTRLR.json" in ro.stderr
    missing = cli("dm", "list", "NOPE", *base)
    assert missing.returncode == 1 and "known: JOSEV_CTRLR" in missing.stderr


@pytest.mark.slow
def test_dm_set_denied_without_write_access(config, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    base = ("--config", str(config))
    assert cli("dm", "get", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", *base).returncode == 0  # creates the db
    db = state / "device_model.sqlite"
    # Root ignores file modes; the immutable attribute binds root too (and os.access reports it).
    lock, unlock = (["chattr", "+i", str(db)], ["chattr", "-i", str(db)]) if os.geteuid() == 0 else \
        (["chmod", "0444", str(db)], ["chmod", "0660", str(db)])
    subprocess.run(lock, check=True)
    try:
        r = cli("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false", *base)
    finally:
        subprocess.run(unlock, check=True)
    assert r.returncode == 3, r.stderr
    assert "permission denied: changing device-model values needs write access" in r.stderr
    assert "run it with sudo, or as a member of group" in r.stderr and "nothing changed" in r.stderr
    assert cli("dm", "get", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", *base).stdout.strip() == "true"


def _secret(path, content: str):
    path.write_text(content)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("key,content", [("mqtt", ""), ("mqtt", "  \n"), ("export", ""), ("export", "\t\n \n")])
def test_check_config_reports_an_empty_password_file(tmp_path, key, content):
    secret = _secret(tmp_path / f"{key}.password", content)
    sections = {"serial": {"url": "/dev/null"}, "paths": {"state_dir": str(tmp_path / "state")},
                key: {"username": "bridge", "password_file": str(secret)}}
    if key == "export":
        sections[key].update(enabled=True, host="127.0.0.1", port=1883, tls=False)
    r = cli("check-config", "--config", str(write_config(tmp_path / "c.toml", sections)))
    assert r.returncode == 2, r.stdout
    assert f"[{key}] password_file" in r.stderr and str(secret) in r.stderr
    assert "empty" in r.stderr and "write the secret into it" in r.stderr


@pytest.mark.parametrize("content", ["", " \n"])
def test_check_config_reports_an_empty_api_token_file(tmp_path, content):
    state = tmp_path / "state"
    state.mkdir()
    token = _secret(state / "api-token", content)
    cfg = write_config(tmp_path / "c.toml", {"serial": {"url": "/dev/null"}, "paths": {"state_dir": str(state)}})
    r = cli("check-config", "--config", str(cfg))
    assert r.returncode == 2, r.stdout
    assert "[api] token_file" in r.stderr and str(token) in r.stderr and "empty" in r.stderr
    assert "delete it" in r.stderr  # the fix


@pytest.mark.e2e  # starts the daemon
@pytest.mark.parametrize("key", ["mqtt", "export"])
def test_the_daemon_refuses_an_empty_password_file_in_one_line(tmp_path, key):
    """At start, before any connection: never a connect with an empty password, never a traceback."""
    secret = _secret(tmp_path / f"{key}.password", "\n")
    sections = {"serial": {"url": "/dev/null"},
                "paths": {"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run")},
                "api": {"listen": "127.0.0.1:0"},
                key: {"username": "bridge", "password_file": str(secret), "port": 1}}  # nothing listens on 1
    if key == "export":
        sections[key].update(enabled=True, host="127.0.0.1", tls=False)
    cfg = write_config(tmp_path / "c.toml", sections)
    r = subprocess.run([sys.executable, "-m", "josev_bridge", "run", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2  # configuration: the unit stays failed (RestartPreventExitStatus=2)
    errors = [line for line in r.stderr.splitlines() if level_of(line) == "ERROR"]
    assert len(errors) == 1 and f"[{key}] password_file" in errors[0] and str(secret) in errors[0], r.stderr
    assert "Traceback" not in r.stderr
