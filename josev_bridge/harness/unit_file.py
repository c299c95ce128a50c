"""systemd unit syntax, as far as the shipped units need it, for the tests that read them."""

from __future__ import annotations

from pathlib import Path


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd unit syntax, as far as these files need it: sections, repeated keys kept in order
    (an empty assignment is kept as ""), comments (# ;), and backslash continuation lines."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: assignment outside a section: {raw!r}"
        assert "=" in line, f"{path.name}: not an assignment: {raw!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def last(section: dict[str, list[str]], key: str) -> str | None:
    values = section.get(key)
    return values[-1] if values else None


def words(section: dict[str, list[str]], key: str) -> list[str]:
    return " ".join(section.get(key, [])).split()
