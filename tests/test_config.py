import os

import pytest

from josev_bridge.config import ConfigError, from_dict, load, read_secret

BASE = {"serial": {"url": "/dev/ttyUSB0"}}


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[serial]\nurl = "/dev/ttyS1"\nbaudrate = 57600\n'
                    '[mqtt]\nprotocol = "3.1.1"\n[charger]\nidentity = "CP-1"\n')
    c = load(path)
    assert (c.serial.url, c.serial.baudrate, c.mqtt.protocol, c.mqtt.port) == ("/dev/ttyS1", 57600, "3.1.1", 1883)
    assert c.status_topic == "josev-bridge/CP-1/status"


@pytest.mark.parametrize("raw,message", [
    ({**BASE, "mqtt": {"portt": 1}}, "[mqtt] portt: unknown key"),
    ({**BASE, "mqtt": {"port": "1883"}}, "[mqtt] port: expected an integer, got '1883'"),
    ({**BASE, "mqtt": {"port": 70000}}, "[mqtt] port: must be a TCP port"),
    ({**BASE, "mqtt": {"protocol": "4"}}, "[mqtt] protocol: expected one of '5', '3.1.1'"),
    ({**BASE, "mqtt": {"request_topic": "ocpp/#"}}, "[mqtt] request_topic: must be a plain topic"),
    ({**BASE, "mqtt": {"tls_cert": "/c"}}, "tls_cert and tls_key"),
    ({**BASE, "mqtt": {"password_file": "/p"}}, "password_file: needs [mqtt] username"),
    ({**BASE, "get_event_timestamp": {"reply_with_current_time_when_unknown": "yes"}}, "expected true or false"),
    ({"serial": {}}, "[serial] url: required"),
    ({**BASE, "bogus": {}}, "unknown section [bogus]"),
    ({**BASE, "journal": {"max_age_days": 0}}, "[journal] max_age_days: must be greater than 0"),
    ({**BASE, "journal": {"max_age_days": -3}}, "[journal] max_age_days: must be greater than 0"),
])
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ConfigError) as exc:
        from_dict(raw)
    assert message in str(exc.value)


def test_not_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "absent.toml")


def test_secrets_must_be_private(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    os.chmod(secret, 0o644)
    with pytest.raises(ConfigError, match="chmod 600") as exc:
        read_secret(str(secret), "[mqtt] password_file")
    assert "s3cret" not in str(exc.value)
    os.chmod(secret, 0o600)
    assert read_secret(str(secret), "x") == "s3cret"


@pytest.mark.parametrize("content", [b"", b" \n\t\r\n"])
def test_an_empty_secret_file_is_an_error_not_an_empty_secret(tmp_path, content):
    secret = tmp_path / "pw"
    secret.write_bytes(content)  # what a crash between creating and writing the file leaves
    os.chmod(secret, 0o600)
    with pytest.raises(ConfigError) as exc:
        read_secret(str(secret), "[mqtt] password_file")
    assert "[mqtt] password_file" in str(exc.value) and str(secret) in str(exc.value) and "empty" in str(exc.value)


@pytest.mark.parametrize("make", [lambda p: p.mkdir(mode=0o700), lambda p: p.write_bytes(b"\xff\xfe\n")])
def test_an_unreadable_secret_file_is_a_config_error_naming_it(tmp_path, make):
    secret = tmp_path / "pw"
    make(secret)
    os.chmod(secret, 0o600 if secret.is_file() else 0o700)
    with pytest.raises(ConfigError) as exc:
        read_secret(str(secret), "[export] password_file")
    assert "[export] password_file" in str(exc.value) and str(secret) in str(exc.value)
