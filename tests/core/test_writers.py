"""Writers: atomic outputs, no half files, inputs never overwritten."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from aptviewer.core import InsufficientDiskSpaceError, atomic_output, check_free_space, open_epos, write_epos
from aptviewer.core import writers
from aptviewer.core.readers import EPOS_COLUMNS


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_atomic_output_renames_only_on_success(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_output(target) as temp:
        temp.write_bytes(b"abc")
        assert not target.exists()
    assert target.read_bytes() == b"abc"
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()  # not the temp file's private 0600
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(target) as temp:
            temp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"abc"  # the old complete file survives
    assert _leftovers(tmp_path) == []


def test_interrupted_epos_write_leaves_no_file(tmp_path, monkeypatch):
    frame = pd.DataFrame(np.zeros((10_000, 11), dtype=np.float32), columns=EPOS_COLUMNS)
    original = writers.iter_chunks

    def interrupted_on_third_chunk(source, columns, chunk_size, **kwargs):
        for number, item in enumerate(original(source, columns, chunk_size, **kwargs)):
            if number == 2:
                raise KeyboardInterrupt  # as Ctrl-C in the middle of the write
            yield item

    monkeypatch.setattr(writers, "iter_chunks", interrupted_on_third_chunk)
    target = tmp_path / "partial.epos"
    with pytest.raises(KeyboardInterrupt):
        write_epos(frame, target, chunk_size=1000)
    assert not target.exists() and _leftovers(tmp_path) == []


def test_writing_over_the_input_is_refused(tmp_path, demo_epos):
    copy = tmp_path / "in.epos"
    copy.write_bytes(demo_epos.read_bytes())
    before = copy.read_bytes()
    with open_epos(copy) as table:
        with pytest.raises(ValueError, match="refusing to overwrite the input"):
            write_epos(table, copy)
    assert copy.read_bytes() == before


def test_missing_columns_are_reported_before_any_file_is_made(tmp_path):
    target = tmp_path / "x.epos"
    with pytest.raises(KeyError, match="missing columns"):
        write_epos(pd.DataFrame({"x (nm)": [1.0]}), target)
    assert not target.exists()


def test_free_space_check(tmp_path):
    check_free_space(tmp_path / "small.bin", 1024)
    check_free_space(tmp_path / "not" / "made" / "yet" / "small.bin", 1024)  # folders come later
    with pytest.raises(InsufficientDiskSpaceError, match="not enough free disk space"):
        check_free_space(tmp_path / "huge.bin", 1 << 60)


def test_atomic_output_hands_out_a_fresh_name_and_needs_a_file(tmp_path):
    target = tmp_path / "out.h5"
    with atomic_output(target) as temp:
        assert temp.parent == tmp_path and not temp.exists()  # the writer creates it
        temp.write_bytes(b"x")
    assert target.read_bytes() == b"x"
    with pytest.raises(FileNotFoundError, match="produced no file"):
        with atomic_output(tmp_path / "nothing.bin"):
            pass
    assert not (tmp_path / "nothing.bin").exists() and _leftovers(tmp_path) == []


def test_partial_outputs_are_the_temporary_files_of_that_output_only(tmp_path):
    target = tmp_path / "run[1]_corrected.h5"          # glob metacharacters in the name
    with atomic_output(target) as temp:
        temp.write_bytes(b"done")
        # A process killed while writing leaves a file named like ``temp``.
        stale = temp.with_name(f".{target.name}.0123456789ab.part")
        assert temp.name.startswith(f".{target.name}.") and len(temp.name) == len(stale.name)
        stale.write_bytes(b"half")
        assert writers.partial_outputs(target) == sorted([stale, temp])
    others = [tmp_path / ".run[1]_corrected.h5.notatag.part", tmp_path / ".other.h5.0123456789ab.part",
              tmp_path / "run[1]_corrected.h5.0123456789ab.part"]
    for other in others:
        other.write_bytes(b"keep")
    assert writers.partial_outputs(target) == [stale]
    assert writers.remove_partial_outputs([target, tmp_path / "missing" / "x.h5"]) == [stale]
    assert not stale.exists() and target.read_bytes() == b"done"
    assert all(other.exists() for other in others)
