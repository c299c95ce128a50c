"""The CLI's table printer: fits the width, cuts the cells it must with an ellipsis, escapes control characters."""

from josev_bridge.cli.common import fit_widths, table


def test_a_single_long_value_is_cut_before_a_column_of_names(capsys):
    rows = [["JOSEV_CTRLR", "EnableGetEventTimestampRequest", "true"],
            ["JOSEV_CTRLR", "EventTimestampTriggerReasonsSupported", "EVConnected," * 8]]
    table(["COMPONENT", "VARIABLE", "VALUE"], rows, width=60)
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert "EventTimestampTriggerReasonsSupported" in lines[2] and lines[2].endswith("…")
    assert lines[1].split()[-1] == "true"


def test_the_widest_column_gives_way_first_and_wide_means_nothing_is_cut(capsys):
    assert fit_widths([[10] * 3, [50, 40, 45]], [3, 3], 40) == [10, 28]
    table(None, [["a" * 50, "b"]], width=None)
    assert capsys.readouterr().out.strip() == "a" * 50 + "  b"


def test_kept_columns_are_never_cut_and_control_characters_are_shown_escaped(capsys):
    table(["ID", "TEXT"], [["0123456789", "x" * 40], ["\x1b[31mred", "y"]], width=30, keep=(0,))
    out = capsys.readouterr().out
    assert "0123456789" in out and "\x1b" not in out and "\\x1b[31mred" in out
    assert all(len(line) <= 30 for line in out.splitlines())
