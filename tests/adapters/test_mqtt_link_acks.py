"""Requests are acknowledged in arrival order, each once it is done (MQTT 5 section 4.6)."""

from josev_bridge.adapters.mqtt_link import InboundAcks


def test_a_request_done_early_waits_for_the_ones_before_it():
    acks = InboundAcks()
    for mid in (1, 2, 3, 4):
        acks.arrived(mid)
    assert acks.done(2) == []  # a silence, done at once: 1 (answer in flight) is still ahead
    assert acks.done(4) == []
    assert acks.done(1) == [1, 2]  # its answer acknowledged: 1, then the 2 that waited
    assert acks.done(3) == [3, 4]


def test_clear_forgets_a_connection():
    acks = InboundAcks()
    acks.arrived(7)
    acks.done(8)
    acks.clear()
    acks.arrived(8)
    assert acks.done(8) == [8]


def test_a_mid_the_connection_is_not_waiting_for_is_ignored():
    """An answer's PUBACK from before a reconnect names a request id the broker may have given to a
    new request since: it must not acknowledge that one."""
    acks = InboundAcks()
    acks.arrived(7)
    assert acks.done(9) == []
    assert acks.done(7) == [7]
    assert acks.done(7) == []  # never twice
