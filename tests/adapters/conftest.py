import pytest

from josev_bridge.adapters.journal_store import JournalStore


@pytest.fixture
def store(tmp_path):
    """A journal writer on a new file (a module may define its own `store`)."""
    s = JournalStore(tmp_path / "journal.sqlite")
    yield s
    s.close()
