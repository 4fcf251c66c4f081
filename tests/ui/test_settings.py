"""Preferences: recent files and the Low memory default."""

from __future__ import annotations

from aptviewer.ui import settings as prefs


def test_recent_files_most_recent_first_without_duplicates(tmp_path, _isolated_settings):
    files = [tmp_path / f"f{i}.epos" for i in range(prefs.MAX_RECENT + 3)]
    for path in files:
        prefs.add_recent_file(path)
    prefs.add_recent_file(files[-5])
    recent = prefs.recent_files()
    assert len(recent) == prefs.MAX_RECENT
    assert recent[0] == str(files[-5].resolve())
    assert recent.count(str(files[-5].resolve())) == 1
    prefs.remove_recent_file(files[-5])
    assert str(files[-5].resolve()) not in prefs.recent_files()
    prefs.clear_recent_files()
    assert prefs.recent_files() == []
    assert prefs.app_settings().fileName().startswith(str(_isolated_settings))


def test_a_single_recent_file_reads_back_as_a_list(tmp_path):
    prefs.add_recent_file(tmp_path / "only.epos")
    assert prefs.recent_files() == [str((tmp_path / "only.epos").resolve())]


def test_low_memory_threshold_is_an_eighth_of_ram_capped_at_one_gib():
    gib = 1 << 30
    assert prefs.low_memory_threshold_bytes(4 * gib) == gib // 2
    assert prefs.low_memory_threshold_bytes(64 * gib) == gib
    assert prefs.default_low_memory(600 << 20, ram_bytes=4 * gib) is True
    assert prefs.default_low_memory(400 << 20, ram_bytes=4 * gib) is False
    # The 27-million-row benchmark EPOS (1.19 GB) streams from disk on any machine.
    assert prefs.default_low_memory(27_000_000 * 44, ram_bytes=256 * gib) is True
    assert prefs.physical_memory_bytes() > 0
