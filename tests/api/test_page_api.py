"""The status page's routes over a real journal, edges.json, status.json and device-model file, and the
page's files served by the real ApiServer: without the token, with a strict policy; data only with it."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import pytest

from josev_bridge.adapters.device_model_store import DeviceModelStore, load_definitions
from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.api.page_api import DeviceModelApi, JournalTailApi, StatusApi, TimelineApi
from josev_bridge.api.server import ApiError, ApiServer, Request
from josev_bridge.api.static_files import static_routes
from josev_bridge.core.device_model import Source
from josev_bridge.core.journal_entry import MCU_EDGE, Direction, JournalEntry
from josev_bridge.core.timestamps import format_us

NOW = 1_800_000_000_000_000
MIN = 60_000_000


def req(**params: str) -> Request:
    return Request("/", {k: [v] for k, v in params.items()}, "127.0.0.1")


@pytest.fixture
def dirs(tmp_path):
    state, run = tmp_path / "state", tmp_path / "run"
    state.mkdir()
    run.mkdir()
    journal = JournalStore(state / "journal.sqlite")
    journal.insert([JournalEntry(NOW - 10 * MIN, Direction.EVENT, MCU_EDGE,
                                 payload={"evseId": 1, "condition": "EVConnected", "rising": True}),
                    JournalEntry(NOW - 4 * MIN, Direction.EVENT, MCU_EDGE,
                                 payload={"evseId": 1, "condition": "EVConnected", "rising": False}),
                    JournalEntry(NOW - MIN, Direction.IN, "get_event_timestamp", payload="<b>not html</b>")])
    journal.close()
    (state / "edges.json").write_text(json.dumps({"edges": {"version": 1, "evses": {"1": {
        "EVConnected": {"active": True, "rise_us": NOW - 2 * MIN, "fall_us": NOW - 4 * MIN}}}}}))
    return state, run


def test_timeline_joins_the_journal_history_to_the_current_edges(dirs):
    state, _ = dirs
    api = TimelineApi(state / "journal.sqlite", state, clock_us=lambda: NOW)
    body = api(req(since=format_us(NOW - 15 * MIN))).body
    api.close()
    ev = next(c for c in body["evses"][0]["conditions"] if c["condition"] == "EVConnected")
    assert [body["evses"][0]["evse"]] == [1]
    assert ev["intervals"] == [{"from": format_us(NOW - 10 * MIN), "to": format_us(NOW - 4 * MIN)},
                               {"from": format_us(NOW - 2 * MIN), "to": None}]
    assert ev["answers"] == {"TxEventStart": format_us(NOW - 2 * MIN), "TxEventStop": None}
    assert [e["eventType"] for e in ev["edges"]] == ["TxEventStart", "TxEventStop", "TxEventStart"]


@pytest.mark.parametrize("params, word", [({"evse": "0"}, "evse"), ({"since": "yesterday"}, "since"),
                                          ({"evse": "1", "colour": "red"}, "colour"),
                                          ({"since": format_us(NOW + MIN)}, "since"),
                                          ({"until": "1970-01-01T12:00:00Z"}, "1970")])  # found by schemathesis
def test_timeline_refuses_what_it_does_not_understand(dirs, params, word):
    state, _ = dirs
    api = TimelineApi(state / "journal.sqlite", state, clock_us=lambda: NOW)
    with pytest.raises(ApiError) as refused:
        api(req(**params))
    api.close()
    assert refused.value.status == 400 and word in refused.value.message


def test_journal_tail_is_newest_first_and_keeps_text_as_text(dirs):
    state, _ = dirs
    api = JournalTailApi(state / "journal.sqlite", "cp-1", 7)
    rows = api(req(limit="2")).body["data"]
    api.close()
    assert [r["id"] for r in rows] == [3, 2] and rows[0]["messagePayload"] == "<b>not html</b>"


def test_journal_tail_refuses_a_limit_given_twice_with_a_400_not_a_500(dirs):  # found by schemathesis
    state, _ = dirs
    api = JournalTailApi(state / "journal.sqlite", "cp-1", 7)
    with pytest.raises(ApiError) as refused:
        api(Request("/", {"limit": ["5", "5"]}, "127.0.0.1"))
    api.close()
    assert refused.value.status == 400 and "limit" in refused.value.message


@pytest.mark.parametrize("given", [[""], ["0"], ["-1"], ["x"], ["501"]])
def test_journal_tail_refuses_a_limit_it_cannot_use_and_defaults_only_when_absent(dirs, given):  # schemathesis
    state, _ = dirs
    api = JournalTailApi(state / "journal.sqlite", "cp-1", 7)
    try:
        assert len(api(Request("/", {}, "127.0.0.1")).body["data"]) == 3  # absent: the default, 50
        with pytest.raises(ApiError) as refused:
            api(Request("/", {"limit": given}, "127.0.0.1"))
    finally:
        api.close()
    assert refused.value.status == 400 and "limit" in refused.value.message


def test_status_gives_the_verdict_of_a_live_daemon_and_of_a_dead_one(dirs):
    _, run = dirs
    doc = {"pid": os.getpid(), "written_at_epoch": time.time(), "mqtt": {"connected": True},
           "mcu_link": {"state": "silent", "port": "/dev/ttyS1", "clock": None},
           "get_event_timestamp": {"enabled": True}, "device_model": {}, "journal": {}, "export": None}
    (run / "status.json").write_text(json.dumps(doc))
    body = StatusApi(run, "cp-1")(req()).body
    assert body["identity"] == "cp-1"
    assert body["verdict"]["state"] == "degraded" and "MCU link silent" in body["verdict"]["reasons"][0]
    (run / "status.json").unlink()
    assert StatusApi(run)(req()).body["verdict"] == {"state": "not answering", "reasons": ["the bridge is not running"]}


def test_device_model_shows_value_source_and_last_change(dirs):
    state, _ = dirs
    store = DeviceModelStore(state, load_definitions())
    store.seed_defaults()
    store.set("JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false", source=Source.LOCAL, user="alice")
    store.close()
    data = DeviceModelApi(state)(req()).body["data"]
    flag = next(v for v in data if v["variable"] == "EnableGetEventTimestampRequest")
    assert flag["value"] == "false" and flag["source"] == "local"
    assert flag["lastChange"]["oldValue"] == "true" and flag["lastChange"]["user"] == "alice"


def test_page_files_need_no_token_and_data_routes_do(dirs):
    _, run = dirs
    server = ApiServer("127.0.0.1", 0, "s3cret", {"/api/status": StatusApi(run)}, public=static_routes())
    server.start()
    base = "http://{}:{}".format(*server.address)
    try:
        for path, kind in (("/", "text/html"), ("/page.js", "text/javascript"), ("/page.css", "text/css")):
            with urllib.request.urlopen(base + path, timeout=5) as answer:
                assert answer.headers["Content-Type"].startswith(kind)
                assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
                assert answer.headers["X-Content-Type-Options"] == "nosniff"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/api/status", timeout=5)
        assert refused.value.code == 401
        ask = urllib.request.Request(base + "/api/status", headers={"Authorization": "Bearer s3cret"})
        with urllib.request.urlopen(ask, timeout=5) as answer:
            assert answer.headers["Cache-Control"] == "no-store"
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        server.stop()
