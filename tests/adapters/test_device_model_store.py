"""Device-model values in SQLite: source precedence across upgrades, mutability, crash safety, audit."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from josev_bridge.adapters.device_model_store import DeviceModelStore, load_definitions
from josev_bridge.core.device_model import DeviceModelError, Source


def definitions(tmp_path, name, variables):
    d = tmp_path / name
    d.mkdir()
    (d / "C.json").write_text(json.dumps({"name": "C", "variables": variables}))
    return load_definitions(d)


def var(name, default, data_type="boolean", mutability="ReadWrite", **ch):
    return {"name": name, "characteristics": {"dataType": data_type, **ch},
            "attributes": [{"type": "Actual", "mutability": mutability, "default": default}]}


def test_upgrade_keeps_local_and_csms_values_and_refreshes_defaults(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    v1 = definitions(tmp_path, "v1", [var("A", "true"), var("B", "true"), var("C", "1", "integer")])
    store = DeviceModelStore(state, v1)
    store.seed_defaults()
    store.set("C", "A", "false", source=Source.LOCAL, user="tech")
    store.set("C", "C", "5", source=Source.CSMS, user="csms")
    store.close()
    v2 = definitions(tmp_path, "v2", [var("A", "true"), var("B", "false"), var("C", "2", "integer"),
                                      var("D", "x", "string")])
    upgraded = DeviceModelStore(state, v2)
    changes = upgraded.seed_defaults()
    values = {(v.variable): (v.value, v.source) for v in upgraded.all_values()}
    assert values == {"A": ("false", "local"), "B": ("false", "default"), "C": ("5", "csms"), "D": ("x", "default")}
    assert sorted(c.variable for c in changes) == ["B", "D"]


def test_read_only_is_refused_unless_from_definitions(tmp_path):
    defs = definitions(tmp_path, "d", [var("R", "a,b", "MemberList", "ReadOnly", valuesList=["a", "b"])])
    store = DeviceModelStore(tmp_path, defs)
    store.seed_defaults()
    for source in (Source.LOCAL, Source.CSMS):
        with pytest.raises(DeviceModelError, match="ReadOnly"):
            store.set("C", "R", "a", source=source, user="x")
    assert store.get("C", "R").value == "a,b"


def test_reset_returns_to_default_source_and_is_audited(tmp_path):
    store = DeviceModelStore(tmp_path, definitions(tmp_path, "d", [var("A", "true")]))
    store.seed_defaults()
    store.set("C", "A", "false", source=Source.LOCAL, user="tech")
    change = store.reset("C", "A", user="tech2")
    assert (change.old_value, change.new_value, change.source) == ("false", "true", "default")
    history = store.history("C", "A")
    assert [(h.new_value, h.source, h.user) for h in history][:2] == [("true", "default", "tech2"),
                                                                     ("false", "local", "tech")]
    assert [h.id for h in store.history(after_id=history[1].id)] == [history[0].id]


def test_invalid_value_changes_nothing(tmp_path):
    store = DeviceModelStore(tmp_path, definitions(tmp_path, "d", [var("N", "1", "integer", minLimit=0, maxLimit=9)]))
    store.seed_defaults()
    before = store.history()
    with pytest.raises(DeviceModelError, match=r"N expects an integer >= 0, <= 9, got '10'"):
        store.set("C", "N", "10", source=Source.LOCAL, user="x")
    assert store.get("C", "N").value == "1" and store.history() == before


def test_definitions_are_schema_checked(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "X.json").write_text(json.dumps({"name": "X", "variables": [
        {"name": "V", "characteristics": {"dataType": "bool"},
         "attributes": [{"type": "Actual", "mutability": "ReadWrite"}]}]}))
    with pytest.raises(DeviceModelError, match=r"X.json: variables/0/characteristics/dataType"):
        load_definitions(d)


WRITER = textwrap.dedent("""
    import sys
    from josev_bridge.adapters.device_model_store import DeviceModelStore, load_definitions
    from josev_bridge.core.device_model import Source
    store = DeviceModelStore(sys.argv[1], load_definitions())
    store.seed_defaults()
    i = 0
    while True:
        store.set("JOSEV_CTRLR", "EnableGetEventTimestampRequest", "true" if i % 2 else "false",
                  source=Source.LOCAL, user="writer")
        i += 1
        if i == 50:
            print("writing", flush=True)
""")


@pytest.mark.slow
def test_sigkill_in_the_middle_of_writes_leaves_old_or_new_never_torn(tmp_path):
    for attempt in range(3):
        state = tmp_path / f"s{attempt}"
        state.mkdir()
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(state)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "writing"  # it is mid-stream in its write loop now
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        db = sqlite3.connect(state / "device_model.sqlite")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        value = db.execute("SELECT value FROM variable_value "
                           "WHERE variable='EnableGetEventTimestampRequest'").fetchone()[0]
        last_audit = db.execute("SELECT new_value FROM audit ORDER BY id DESC LIMIT 1").fetchone()[0]
        assert value in ("true", "false") and value == last_audit  # value and its audit row commit together
