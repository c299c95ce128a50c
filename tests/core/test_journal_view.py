"""A journal row in words (core/journal_view): what the 80-column `messages` table shows."""

from josev_bridge.core.event_timestamp import FLAG_OFF
from josev_bridge.core.journal_entry import DEVICE_MODEL_CHANGE, MCU_LINK, Direction, JournalEntry, NoAnswer
from josev_bridge.core.journal_view import what
from josev_bridge.core.timestamps import parse_us

T = parse_us("2026-02-17T10:20:31.000Z")


def request(response, note=None, **data):
    return JournalEntry(T, Direction.IN, "get_event_timestamp", "ocpp/cs", "id-1",
                        {"event_type": "TxEventStart", "trigger_reason": "EVConnected", **data}, response, note=note)


def test_an_answer_shows_the_question_and_the_time_without_the_rows_date():
    assert what(request({"timestamp": "2026-02-17T10:20:30.123Z"})) == "TxEventStart/EVConnected -> 10:20:30.123Z"
    assert what(request({"timestamp": "2026-02-16T23:59:59.999Z"}, evse_id=2)) == \
        "TxEventStart/EVConnected EVSE 2 -> 2026-02-16T23:59:59.999Z"


def test_silence_says_why_in_a_few_words():
    assert what(request(NoAnswer.NOT_SUPPORTED, note=FLAG_OFF)) == "TxEventStart/EVConnected: silent, flag off"
    assert what(request(NoAnswer.NO_EVENT_RECORDED)).endswith(": silent, no edge recorded")
    assert what(request(NoAnswer.NOT_SUPPORTED, note="DataSigned has no stop event")).endswith("silent, no stop event")


def test_a_device_model_change_shows_old_and_new_first():
    entry = JournalEntry(T, Direction.EVENT, DEVICE_MODEL_CHANGE, payload={
        "component": "JOSEV_CTRLR", "variable": "EnableGetEventTimestampRequest", "attribute": "Actual",
        "oldValue": "true", "newValue": "false", "source": "local", "user": "alice"})
    assert what(entry).startswith("true -> false JOSEV_CTRLR.EnableGetEventTimestampRequest (local, by alice)")


def test_an_mcu_link_event_and_a_set_variable_validate():
    link = JournalEntry(T, Direction.EVENT, MCU_LINK, payload={"state": "open", "mcuBootId": "0000002a",
                                                               "lostRecords": 3, "changed": ["boot_id"]})
    assert what(link) == "link open, boot 0000002a, 3 records LOST, changed: boot_id"
    svv = JournalEntry(T, Direction.IN, "set_variable_validate", "josev/cs", "x", {
        "component": {"name": "JOSEV_CTRLR"}, "variable": {"name": "EnableGetEventTimestampRequest"},
        "attribute_value": "false"}, {"status": "accepted"})
    assert what(svv) == "JOSEV_CTRLR.EnableGetEventTimestampRequest = 'false' -> accepted"
