"""The [export] section: defaults, derived client id and topic, and every check naming its key."""

import pytest

from josev_bridge.config import ConfigError, from_dict

BASE = {"serial": {"url": "/dev/ttyUSB0"}, "charger": {"identity": "CP-0042"}}
ON = {"enabled": True, "host": "fleet.example.net"}


def test_off_by_default_with_tls_on_8883():
    c = from_dict(BASE)
    e = c.export
    assert (e.enabled, e.port, e.tls, e.protocol, e.topic_prefix, e.max_inflight) == (False, 8883, True, "5",
                                                                                       "josev-bridge", 32)
    assert c.export_client_id == "josev-bridge-export-CP-0042"
    assert c.export_topic == "josev-bridge/CP-0042/journal"


def test_overrides():
    c = from_dict({**BASE, "export": {**ON, "client_id": "cp42", "topic_prefix": "fleet/eu", "port": 1883,
                                      "tls": False, "protocol": "3.1.1"}})
    assert (c.export_client_id, c.export_topic) == ("cp42", "fleet/eu/CP-0042/journal")
    assert (c.export.port, c.export.tls, c.export.protocol) == (1883, False, "3.1.1")


def test_disabled_section_is_not_checked_beyond_types():
    assert not from_dict({**BASE, "export": {"tls_cert": "/c"}}).export.enabled


@pytest.mark.parametrize("raw,message", [
    ({**BASE, "export": {"enabled": True}}, "[export] host: required when [export] enabled = true"),
    ({**BASE, "export": {**ON, "tls_cert": "/c"}}, "[export] tls_cert and tls_key: set both or neither"),
    ({**BASE, "export": {**ON, "tls_key": "/k"}}, "[export] tls_cert and tls_key: set both or neither"),
    ({**BASE, "export": {**ON, "tls": False, "tls_ca": "/ca"}}, "[export] tls_ca/tls_cert: set tls = true"),
    ({**BASE, "export": {**ON, "password_file": "/p"}}, "[export] password_file: needs [export] username"),
    ({**BASE, "export": {**ON, "reconnect_min_delay": 9.0, "reconnect_max_delay": 2.0}},
     "[export] reconnect_min_delay: must not exceed"),
    ({**BASE, "export": {**ON, "topic_prefix": "fleet/#"}}, "[export] topic_prefix: must be a plain topic"),
    ({**BASE, "export": {**ON, "topic_prefix": "fleet/"}}, "[export] topic_prefix: must be a plain topic"),
    ({**BASE, "export": {**ON, "max_inflight": 0}}, "[export] max_inflight: must be 1..65535"),
    ({**BASE, "export": {**ON, "connect_timeout": 0}}, "[export] connect_timeout: must be greater than 0"),
    ({**BASE, "export": {**ON, "port": 0}}, "[export] port: must be greater than 0"),
    ({**BASE, "export": {**ON, "protocol": "3"}}, "[export] protocol: expected one of '5', '3.1.1'"),
    ({**BASE, "export": {**ON, "hots": "x"}}, "[export] hots: unknown key"),
    ({**BASE, "export": ON, "journal": {"enabled": False}}, "[export] enabled: needs [journal] enabled"),
    ({"serial": {"url": "/dev/ttyUSB0"}, "charger": {"identity": "CP/42"}, "export": ON},
     "[charger] identity: must not contain"),
])
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ConfigError) as exc:
        from_dict(raw)
    assert message in str(exc.value)
