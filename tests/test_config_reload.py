"""What SIGHUP applies and what it names as needing a restart (config.reload_plan)."""

import dataclasses

from josev_bridge.config import LIVE_SECTIONS, Config, from_dict, reload_plan

BASE = {"serial": {"url": "/dev/ttyUSB0"}, "charger": {"identity": "CP-1"}}


def with_(**sections) -> Config:
    return from_dict({**BASE, **sections})


def test_every_changed_section_is_either_applied_or_named():
    changes = {"mqtt": {"port": 1884}, "serial": {"url": "/dev/ttyS1"}, "paths": {"state_dir": "/tmp/x"},
               "charger": {"identity": "CP-2"}, "get_event_timestamp": {"reply_with_current_time_when_unknown": True},
               "journal": {"max_age_days": 7}, "alerts": {"offline_threshold_minutes": 9},
               "api": {"listen": "127.0.0.1:9090"}, "export": {"enabled": True, "host": "fleet"},
               "logging": {"level": "DEBUG"}}
    sections = {f.name for f in dataclasses.fields(Config)} - {"source"}
    assert set(changes) == sections  # a section added to Config must be added here, and to the plan
    applied, restart = reload_plan(with_(), with_(**changes))
    assert applied == ["get_event_timestamp", "logging"] == [s for s in sections_in_order() if s in LIVE_SECTIONS]
    assert set(restart) == sections - set(LIVE_SECTIONS) and {"api", "journal", "alerts"} <= set(restart)


def sections_in_order():
    return [f.name for f in dataclasses.fields(Config)]


def test_nothing_changed_nothing_named():
    assert reload_plan(with_(), with_()) == ([], [])
    assert reload_plan(with_(), with_(api={"rate_limit_per_s": 5.0})) == ([], ["api"])
