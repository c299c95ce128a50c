from josev_bridge.adapters import alert_store
from josev_bridge.adapters.alert_store import AlertStore
from josev_bridge.core.alerts import Alert, AlertType, SessionErrorDetails

T0 = 1_714_435_200_000_000


def fault(i: int, end_us=None) -> Alert:
    return Alert(AlertType.CHARGING_SESSION_ERROR, 1, 1, T0 + i, SessionErrorDetails(
        "Faulted", f"Code{i}", None, None, None), end_us=end_us)


def test_recording_an_episode_twice_updates_it(tmp_path):
    store = AlertStore(tmp_path / "a.sqlite")
    first = store.record(fault(1), False, (1, 2))
    assert store.record(fault(1, end_us=T0 + 99), True, (3,)) == first  # the end; flag and recipients kept
    stored = store.get(first)
    assert stored.alert.end_us == T0 + 99 and stored.muted is False and stored.recipients == (1, 2)


def test_query_filters_and_pages(tmp_path):
    store = AlertStore(tmp_path / "a.sqlite")
    for i in range(6):
        store.record(fault(i), i == 5, (1,) if i % 2 else (2,))
    page, more = store.query(limit=2)
    assert [s.id for s in page] == [5, 4] and more  # id 6 is muted
    page, more = store.query(limit=10, before_id=4)
    assert [s.id for s in page] == [3, 2, 1] and not more
    assert [s.id for s in store.query(include_muted=True, limit=1)[0]] == [6]
    assert [s.id for s in store.query(recipient_ids=(1,))[0]] == [4, 2]
    assert [s.id for s in store.query(start_after_us=T0 + 2)[0]] == [5, 4]


def test_closed_alerts_beyond_the_bound_go_oldest_first(tmp_path, monkeypatch):
    monkeypatch.setattr(alert_store, "MAX_ROWS", 3)
    store = AlertStore(tmp_path / "a.sqlite")
    store.record(fault(0), False, ())  # open: kept whatever the bound
    for i in range(1, 6):
        store.record(fault(i, end_us=T0 + 100), False, (1,))
    ids = [s.id for s in store.query(limit=50)[0]]
    assert 1 in ids and len(ids) == 3 and max(ids) == 6
