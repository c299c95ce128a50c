import pytest

from josev_bridge.core.device_model import (
    AttributeDef,
    DataType,
    DeviceModelError,
    Mutability,
    VariableDef,
    as_bool,
    parse_component,
    validate,
)


def var(data_type, **kw):
    return VariableDef("C", "V", DataType(data_type), {"Actual": AttributeDef("Actual", Mutability.READ_WRITE, None)},
                       **kw)


@pytest.mark.parametrize("value,ok", [("true", True), ("false", True), ("True", False), ("1", False),
                                      ("yes", False), ("", False)])
def test_booleans_are_exactly_true_or_false(value, ok):
    problem = validate(var("boolean"), value)
    assert (problem is None) is ok
    if not ok:
        assert problem == f"V expects true or false, got {value!r}"


def test_numbers_limits_lists_and_datetimes():
    assert validate(var("integer", min_limit=1, max_limit=10), "10") is None
    assert "an integer >= 1, <= 10" in validate(var("integer", min_limit=1, max_limit=10), "11")
    assert validate(var("integer"), "1.5") is not None
    assert validate(var("decimal"), "nan") is not None
    assert validate(var("OptionList", values_list=("A", "B")), "C") == "V expects one of A, B, got 'C'"
    assert validate(var("MemberList", values_list=("A", "B")), "A,B") is None
    assert validate(var("MemberList", values_list=("A", "B")), "A,A") is not None
    assert validate(var("dateTime"), "2026-01-01T00:00:00Z") is None
    assert validate(var("dateTime"), "2026-01-01T00:00:00") is not None


def test_a_bad_default_in_a_definition_is_refused():
    attribute = {"type": "Actual", "mutability": "ReadWrite", "default": "yes"}
    doc = {"name": "C", "variables": [{"name": "V", "characteristics": {"dataType": "boolean"},
                                       "attributes": [attribute]}]}
    with pytest.raises(DeviceModelError, match="default 'yes'"):
        parse_component(doc)


def test_missing_value_means_off():
    assert as_bool(None) is False and as_bool("true") is True and as_bool("false") is False


def test_strings_and_sequence_lists():
    assert validate(var("string", max_length=3), "abc") is None
    assert validate(var("string", max_length=3), "abcd") == "V expects a string of at most 3 characters, got 'abcd'"
    seq = var("SequenceList", values_list=("A", "B"))
    assert validate(seq, "B,A,B") is None  # order matters and repeats are allowed in a sequence
    assert validate(seq, "B,C") == "V expects a comma-separated list of A, B, got 'B,C'"
    assert validate(var("decimal", min_limit=0.5), "0.25") is not None
    assert validate(var("decimal", min_limit=0.5), "1e1") is None
