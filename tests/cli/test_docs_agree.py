"""`--help`, the README and the OpenAPI documents state the same defaults as the code that runs.

Each figure comes from the constant the code uses; the test finds the sentence in each document that
states it. A changed default (or a document edited alone) fails here, naming the document."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from josev_bridge.adapters.device_model_store import STAT_INTERVAL_S
from josev_bridge.cli import parser_for_docs
from josev_bridge.config import ApiConfig, JournalConfig, PathsConfig
from josev_bridge.core.journal_query import DEFAULT_LIMIT, DEFAULT_RANGE_US, HOUR_US
from josev_bridge.sim.mcu import DEFAULT_EVSE_COUNT

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
API = json.loads((ROOT / "docs" / "api.openapi.json").read_text())
SIM_API = json.loads((ROOT / "docs" / "sim-control-api.openapi.json").read_text())


def help_of(*path: str) -> str:
    parser = parser_for_docs()
    for name in path:
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = sub.choices[name]
    return " ".join(parser.format_help().split())


def default_of(*path: str, option: str):
    parser = parser_for_docs()
    for name in path:
        parser = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[name]
    return next(a for a in parser._actions if option in a.option_strings).default


def test_dm_set_applies_within_the_same_time_everywhere():
    within = f"{STAT_INTERVAL_S * 1000:g} ms"
    assert f"applies it within {within}" in help_of("dm", "set")
    assert f"the running bridge applies it within {within}" in " ".join(help_of("dm").split())
    assert f"The running bridge applies a change within {within}" in README
    assert "within a second" not in help_of("dm", "set")


def test_sim_evse_count_everywhere():
    assert default_of("sim", option="--evse-count") == DEFAULT_EVSE_COUNT
    assert f"ids 1..N (default {DEFAULT_EVSE_COUNT})" in help_of("sim")
    stated = re.findall(r"--evse-count`?[,\s(]*default\s+(\d+)", " ".join(json.dumps(SIM_API).split("\\n")))
    assert stated and set(stated) == {str(DEFAULT_EVSE_COUNT)}, stated  # the intro and every evse_id field


def test_the_journal_defaults_everywhere():
    hours = DEFAULT_RANGE_US // HOUR_US
    assert default_of("messages", option="--since") == f"{hours}h"
    assert default_of("messages", option="--limit") == DEFAULT_LIMIT
    start = next(p for p in API["paths"]["/api/ocpp-messages"]["get"]["parameters"] if p["name"] == "startTimestamp")
    assert f"Default: {hours} hours before" in start["description"]
    limit = next(p for p in API["paths"]["/api/ocpp-messages"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["default"] == DEFAULT_LIMIT
    assert f"the last {hours} h, newest {DEFAULT_LIMIT} rows" in README
    assert f"`startTimestamp` (default {hours} h before the end)" in README
    assert f"`limit` (default {DEFAULT_LIMIT}, at most 500)" in README


def test_the_alerts_defaults_everywhere():
    since = default_of("alerts", option="--since")
    assert since == "7d" and "(default 7d)" in help_of("alerts")
    assert "josev-bridge alerts                                    # the last 7 days" in README
    limit = next(p for p in API["paths"]["/api/alerts"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["default"] == default_of("alerts", option="--limit")


@pytest.mark.parametrize("line", [f'listen = "{ApiConfig.listen}"', f"max_age_days = {JournalConfig.max_age_days:g}",
                                  f"max_size_mb = {JournalConfig.max_size_mb:g}",
                                  f'runtime_dir = "{PathsConfig.runtime_dir}"',
                                  f'state_dir = "{PathsConfig.state_dir}"'])
def test_the_readme_configuration_states_the_defaults(line):
    assert line in README


def test_the_api_documents_state_the_config_defaults():
    assert f"default `{ApiConfig.listen}`" in API["info"]["description"]
    assert f"`[api] rate_limit_per_s`, default {ApiConfig.rate_limit_per_s:g}/s" in README
