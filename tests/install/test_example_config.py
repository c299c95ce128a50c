"""The example configuration the package installs as /etc/josev-bridge/config.toml cannot go stale:
every key of every section is in it, each "#key = value" line shows the real default, and it loads as
shipped.

Convention of the file: "#key = value" (no space after "#") is a setting shown with its default;
"# text" is prose. Uncommenting every setting line must give every key config.py knows.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from josev_bridge import config as cfg
from josev_bridge.core.alert_muting import _KEYS as MUTE_KEYS
from josev_bridge.core.alert_recipients import Recipient
from josev_bridge.core.alerts import AlertSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "packaging" / "config.toml"
SETTING = re.compile(r"^#(\[\[[a-z_.]+\]\]|[a-z_]+ = .*)$")
# The keys the example sets (every board differs there); everything else is shown commented.
ACTIVE = {("serial", "url"), ("charger", "identity")}
SECTIONS = {f.name: f.default_factory() for f in dataclasses.fields(cfg.Config) if f.name != "source"}


def every_setting(text: str) -> dict:
    """The example with every "#key = value" and "#[[table]]" line uncommented."""
    return tomllib.loads("\n".join(m.group(1) if (m := SETTING.match(line)) else line for line in text.splitlines()))


@pytest.fixture(scope="module")
def text() -> str:
    return EXAMPLE.read_text()


def test_loads_as_shipped_and_sets_only_the_board_specific_keys(text):
    shipped = tomllib.loads(text)
    assert {(s, k) for s, values in shipped.items() for k in values} == ACTIVE
    loaded = cfg.load(EXAMPLE)
    assert loaded.serial.url and loaded.charger.identity


def test_sections_are_config_sections_in_order(text):
    assert list(tomllib.loads(text)) == list(SECTIONS)


@pytest.mark.parametrize("section", [s for s in SECTIONS if s != "alerts"])
def test_every_key_with_its_default(text, section):
    shown = every_setting(text)[section]
    defaults = SECTIONS[section]
    fields = {f.name for f in dataclasses.fields(defaults)}
    assert set(shown) == fields, f"[{section}] missing {fields - set(shown)}, unknown {set(shown) - fields}"
    for key, value in shown.items():
        default = getattr(defaults, key)
        if (section, key) in ACTIVE:
            continue
        if default is None:  # unset by default: the example shows a value to copy, of the right type
            assert isinstance(value, str), f"[{section}] {key}"
        else:
            assert (type(value), value) == (type(default), default), \
                f"[{section}] {key}: shown {value!r}, default {default!r}"


def test_alerts_every_key_with_its_default(text):
    shown = every_setting(text)["alerts"]
    settings = {f.name: getattr(AlertSettings(), f.name) for f in dataclasses.fields(AlertSettings)}
    expected = {"enabled": cfg.AlertsConfig().enabled, **settings}
    assert {k: v for k, v in shown.items() if k not in ("recipients", "mute")} == expected
    assert all(type(shown[k]) is type(v) for k, v in expected.items())
    (recipient,) = shown["recipients"]
    assert set(recipient) == {f.name for f in dataclasses.fields(Recipient)}
    (rule,) = shown["mute"]
    assert set(rule) == set(MUTE_KEYS)


def test_every_example_value_is_valid(text):
    """Uncommenting any line gives a working configuration (the example values have the right form)."""
    loaded = cfg.from_dict(every_setting(text), source=str(EXAMPLE))
    assert loaded.alerts.recipients and loaded.alerts.mute
