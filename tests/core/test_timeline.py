"""core/timeline: the status page's bars and answer marks from the journal's edges and edges.json."""

from josev_bridge.core.timeline import HistoryEdge, Interval, timeline

H = 3_600_000_000  # an hour in µs
NOW = 100 * H


def snap(**conditions: dict) -> dict:
    return {"version": 1, "evses": {"1": conditions}}


def line(lines, name):
    return next(ln for ln in lines if ln.condition == name)


def test_a_session_inside_the_window_is_one_closed_bar_and_its_edges_are_the_answers():
    history = [HistoryEdge(1, "EVConnected", True, NOW - 3 * H), HistoryEdge(1, "EVConnected", False, NOW - H)]
    s = snap(EVConnected={"active": False, "rise_us": NOW - 3 * H, "fall_us": NOW - H})
    ev = line(timeline(1, NOW - 24 * H, NOW, history, s), "EVConnected")
    assert ev.intervals == (Interval(NOW - 3 * H, NOW - H),)
    assert (ev.answer_start_us, ev.answer_stop_us) == (NOW - 3 * H, NOW - H)
    assert len(ev.edges) == 2  # the snapshot's copies of the same edges are not counted twice


def test_the_snapshot_alone_shows_an_edge_the_journal_has_not_committed_yet():
    s = snap(EVConnected={"active": True, "rise_us": NOW - 5_000_000, "fall_us": None})
    ev = line(timeline(1, NOW - 15 * 60_000_000, NOW, [], s), "EVConnected")
    assert ev.intervals == (Interval(NOW - 5_000_000, None),) and ev.active
    assert ev.answer_stop_us is None


def test_a_condition_true_since_before_the_window_starts_open_ended_at_the_left():
    s = snap(Authorized={"active": True, "rise_us": NOW - 30 * H, "fall_us": NOW - 40 * H})
    au = line(timeline(1, NOW - 24 * H, NOW, [], s), "Authorized")
    assert au.intervals == (Interval(None, None),) and au.edges == ()
    assert (au.answer_start_us, au.answer_stop_us) == (NOW - 30 * H, None)  # the fall was before the rise


def test_a_first_edge_that_falls_means_true_at_the_start_of_the_window():
    history = [HistoryEdge(1, "EnergyTransfer", False, NOW - 2 * H), HistoryEdge(1, "EnergyTransfer", True, NOW - H)]
    s = snap(EnergyTransfer={"active": True, "rise_us": NOW - H, "fall_us": NOW - 2 * H})
    et = line(timeline(1, NOW - 24 * H, NOW, history, s), "EnergyTransfer")
    assert et.intervals == (Interval(None, NOW - 2 * H), Interval(NOW - H, None))


def test_other_evses_and_unknown_evses_stay_out_and_datasigned_has_no_stop():
    history = [HistoryEdge(2, "EVConnected", True, NOW - H)]
    s = snap(DataSigned={"active": False, "rise_us": NOW - 2 * H, "fall_us": NOW - H})
    lines = timeline(1, NOW - 24 * H, NOW, history, s)
    assert [ln.condition for ln in lines] == ["EVConnected", "Authorized", "ParkingBayOccupancy",
                                              "PowerPathClosed", "EnergyTransfer", "DataSigned"]
    assert line(lines, "EVConnected").intervals == ()
    assert line(lines, "DataSigned").answer_stop_us is None
    assert all(ln.intervals == () for ln in timeline(7, NOW - H, NOW, history, s))


def test_the_snapshots_monotonic_times_are_drawn_in_utc():
    """edges.json keeps host monotonic times (issue 14 item 4): the page adds the offset edges.json
    recorded; a time fixed to UTC in an earlier host boot, or by an older version, is drawn as it is."""
    from josev_bridge.core.host_time import Basis
    from josev_bridge.core.timeline import utc_times

    snapshot = {"version": 2, "evses": {}}
    assert utc_times(snapshot, {"rise_us": 5_000_000, "fall_us": None}, NOW) == (NOW + 5_000_000, None)
    fixed = {"rise_us": NOW, "rise_basis": Basis.UTC_UNSYNCHRONISED.value, "fall_us": 7_000_000}
    assert utc_times(snapshot, fixed, NOW) == (NOW, NOW + 7_000_000)
    assert utc_times({"version": 1}, {"rise_us": NOW}, 123) == (NOW, None)
