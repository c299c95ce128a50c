"""What every CLI command shares: exit codes and the table printer."""

from __future__ import annotations

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_DENIED = 0, 1, 2, 3


def asdict(obj) -> dict:
    from dataclasses import asdict

    return asdict(obj)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)]}  # C0, DEL, C1: shown, never sent


def table(header: list[str] | None, rows: list[list[str]]) -> None:
    """Columns padded to fit. Control characters (an ESC in a message id from the bus) are shown
    escaped: a table must not be able to move a technician's cursor or recolour the terminal."""
    cells = ([header] if header else []) + [[str(c).translate(_CONTROL) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))] if cells else []
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
