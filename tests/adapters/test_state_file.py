import json

from josev_bridge.adapters.state_file import AtomicJsonFile


def test_save_load_and_quarantine(tmp_path):
    f = AtomicJsonFile(tmp_path / "s.json")
    assert f.load() is None
    f.save({"a": 1})
    assert f.load() == {"a": 1}
    assert (tmp_path / "s.json").stat().st_mode & 0o777 == 0o600
    (tmp_path / "s.json").write_text("{torn")
    assert f.load() is None
    assert len(list(tmp_path.glob("s.json.corrupt-*"))) == 1


def test_a_leftover_temp_file_from_a_killed_write_does_not_matter(tmp_path):
    f = AtomicJsonFile(tmp_path / "s.json")
    f.save({"v": "old"})
    (tmp_path / ".s.json.tmp").write_text('{"v": "ne')  # kill -9 in the middle of the next write
    assert f.load() == {"v": "old"}
    f.save({"v": "new"})
    assert json.loads((tmp_path / "s.json").read_text()) == {"v": "new"}
