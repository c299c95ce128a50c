"""What every CLI command shares: exit codes, the table printer and the terminal's width."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_DENIED = 0, 1, 2, 3

EXIT_CODES = ((EXIT_OK, "success (for status: the bridge is answering)"),
              (EXIT_FAIL, "failure: no answer, a bad value, the bridge degraded or not answering"),
              (EXIT_USAGE, "usage or configuration error (an unknown option, --type or key)"),
              (EXIT_DENIED, "permission denied: the message names the file, its group and what to do"))

DEFAULT_WIDTH = 80  # when the terminal's width is unknown (output to a pipe or a file)
MIN_WIDTH = 40
ELLIPSIS = "…"
GAP = "  "


def asdict(obj) -> dict:
    from dataclasses import asdict

    return asdict(obj)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)]}  # C0, DEL, C1: shown, never sent


def escape(text: object) -> str:
    """Control characters shown escaped: text from the bus (an ESC in a message id) must not be able
    to move a technician's cursor or recolour the terminal."""
    return str(text).translate(_CONTROL)


def terminal_width(wide: bool = False) -> int | None:
    """The width tables must fit: the terminal's (or $COLUMNS), 80 when output goes to a pipe or a
    file; None (no limit) with --wide."""
    if wide:
        return None
    return max(MIN_WIDTH, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)


def cut(text: str, width: int) -> str:
    """`text` in at most `width` columns, the cut marked with an ellipsis."""
    return text if len(text) <= width else text[:max(0, width - 1)] + ELLIPSIS


def fit_widths(columns: Sequence[Sequence[int]], floors: Sequence[int], limit: int | None) -> list[int]:
    """Column widths (from each column's cell lengths) whose sum, with the gaps, fits `limit`.

    A column at a time gives up one character: the one where that hides the fewest cells, and of
    those the widest. So a single long value (a member list in `dm list`) is cut before a column of
    names each of which would lose its end, and no column goes below its floor."""
    widths = [max(cells, default=0) for cells in columns]
    if limit is None:
        return widths
    counts = [Counter(cells) for cells in columns]
    excess = sum(widths) + len(GAP) * (len(widths) - 1) - limit
    while excess > 0:
        shrinkable = [i for i, w in enumerate(widths) if w > floors[i]]
        if not shrinkable:
            break  # even the floors do not fit: let the line run over rather than lose every column
        i = min(shrinkable, key=lambda i: (counts[i][widths[i]], -widths[i], -i))
        widths[i] -= 1  # cost counted only cells exactly this wide: longer ones were cut already
        excess -= 1
    return widths


def table(header: Sequence[str] | None, rows: Sequence[Sequence[object] | str], *, width: int | None = None,
          widths: list[int] | None = None, keep: Sequence[int] = ()) -> list[int]:
    """Print columns padded to fit `width` (None: as wide as they are), cutting the widest column
    first (never those in `keep`); a `str` among the rows is printed as a line of its own (a date
    line). Returns the widths used, so the rows a `--follow` prints later line up under the first
    ones (pass them back as `widths`)."""
    cells = ([list(header)] if header else []) + [escape(r) if isinstance(r, str) else [escape(c) for c in r]
                                                  for r in rows]
    grid = [c for c in cells if not isinstance(c, str)]
    if not grid:
        for line in cells:
            print(line)
        return widths or []
    if widths is None:
        columns = [[len(row[i]) for row in grid] for i in range(len(grid[0]))]
        floors = [max(col) if i in keep else min(max(col), max(3, len(header[i]) if header else 3))
                  for i, col in enumerate(columns)]
        widths = fit_widths(columns, floors, width)
    for row in cells:
        if isinstance(row, str):
            print(row)
        else:
            print(GAP.join(cut(c, w).ljust(w) for c, w in zip(row, widths)).rstrip())
    return widths


class Printer:
    """Prints rows as a table across calls (the first call's column widths are kept, so `--follow`
    lines up) with a date line whenever the UTC day changes."""

    def __init__(self, header: list[str], width: int | None, keep: tuple[int, ...] = ()) -> None:
        self.header: list[str] | None = header
        self.width, self.keep = width, keep
        self.widths: list[int] | None = None
        self.day: str | None = None

    def rows(self, rows: list[tuple[str, list[object]]]) -> None:
        """(the row's UTC date, `2026-02-17`, cells) per row."""
        lines: list[list[object] | str] = []
        for day, cells in rows:
            if day != self.day:
                lines.append(f"-- {day} (UTC) --")
                self.day = day
            lines.append(cells)
        if not lines and self.header is None:
            return
        self.widths = table(self.header, lines, width=self.width, widths=self.widths, keep=self.keep) or None
        self.header = None
        sys.stdout.flush()


def fields(rows: Sequence[tuple[str, str]], *, width: int | None = None) -> None:
    """`label  value` lines (status), a long value wrapped under itself rather than cut: every word
    of a status line matters."""
    import textwrap

    label_w = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        text = escape(value)
        room = None if width is None else max(20, width - label_w - len(GAP))
        lines = textwrap.wrap(text, room, break_on_hyphens=False) if room and len(text) > room else [text]
        print(f"{label.ljust(label_w)}{GAP}{lines[0]}".rstrip())
        for more in lines[1:]:
            print(f"{' ' * (label_w + len(GAP))}{more}")


def error(message: str) -> None:
    """One line on stderr, prefixed like every other tool's (`josev-bridge: ...`)."""
    print(f"josev-bridge: {escape(message)}", file=sys.stderr)


def load_config(path: str) -> Config:
    """The configuration, or AccessDenied naming the file and its group when this user may not read
    it (the daemon's config directory may be closed to users outside its group)."""
    from ..config import load
    from .access import require

    require(path, "read", "reading the configuration")
    return load(path)
