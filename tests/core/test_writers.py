"""Writers: atomic outputs, no half files, inputs never overwritten."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from aptviewer.core import InsufficientDiskSpaceError, atomic_output, check_free_space, open_epos, write_epos
from aptviewer.core import lazy, writers
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


def _pieces(seed, n):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, int(size), dtype=np.uint8) for size in rng.integers(0, 20_000, n)]


@pytest.mark.parametrize("seed", range(4))
def test_sequential_file_writes_every_byte_in_order(tmp_path, monkeypatch, seed):
    # A small stage: many aligned writes, a remainder carried over, and a padded tail
    # cut back to the file's length.
    monkeypatch.setattr(writers, "_STAGE_BYTES", 3 * writers._DIRECT_ALIGN)
    pieces = _pieces(seed, 40)
    path = tmp_path / "out.bin"
    with writers.SequentialFile(path) as handle:
        for piece in pieces:
            assert handle.write(piece) == piece.size
    assert handle.direct == hasattr(os, "O_DIRECT")  # this file system takes direct I/O
    assert path.read_bytes() == b"".join(p.tobytes() for p in pieces)


def test_sequential_file_without_direct_io_is_an_ordinary_file(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "O_DIRECT", raising=False)
    pieces = _pieces(7, 10)
    with writers.SequentialFile(tmp_path / "out.bin") as handle:
        assert not handle.direct
        for piece in pieces:
            handle.write(memoryview(piece))
    assert (tmp_path / "out.bin").read_bytes() == b"".join(p.tobytes() for p in pieces)


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="direct I/O is a Linux feature")
@pytest.mark.parametrize("refuse_at", [0, 2])
def test_sequential_file_turns_buffered_when_direct_writes_are_refused(tmp_path, monkeypatch, refuse_at):
    # Some file systems accept O_DIRECT at open and refuse the writes (EINVAL): nothing is lost.
    monkeypatch.setattr(writers, "_STAGE_BYTES", 2 * writers._DIRECT_ALIGN)
    real_pwrite, calls = os.pwrite, []

    def pwrite(fd, data, offset):
        calls.append(offset)
        if len(calls) > refuse_at:
            raise OSError(22, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(writers.os, "pwrite", pwrite)
    pieces = _pieces(3, 12)
    with writers.SequentialFile(tmp_path / "out.bin") as handle:
        for piece in pieces:
            handle.write(piece)
    assert not handle.direct and len(calls) == refuse_at + 1
    assert (tmp_path / "out.bin").read_bytes() == b"".join(p.tobytes() for p in pieces)


def test_an_epos_written_past_the_cache_reads_back_equal(tmp_path, demo_epos):
    out = write_epos(open_epos(demo_epos), tmp_path / "copy.epos", chunk_size=777)
    assert out.read_bytes() == demo_epos.read_bytes()


def test_sequential_file_writes_aligned_blocks_in_place_and_the_rest_through_its_buffer(tmp_path, monkeypatch):
    # Whole 4 KiB blocks at an aligned address go straight to the disk when nothing is
    # pending; anything else is gathered first. The bytes are the same either way.
    block = writers._DIRECT_ALIGN
    aligned = [lazy.aligned_empty(2 * block, np.uint8) for _ in range(3)]
    for k, array in enumerate(aligned):
        array[:] = np.arange(2 * block) % (251 - k)
    odd = np.arange(1000, dtype=np.uint8)
    real_pwrite, sizes = os.pwrite, []
    monkeypatch.setattr(writers.os, "pwrite", lambda fd, data, offset: sizes.append(len(data)) or
                        real_pwrite(fd, data, offset))
    sequence = [aligned[0], aligned[1], odd, aligned[2]]
    with writers.SequentialFile(tmp_path / "out.bin") as handle:
        for piece in sequence:
            handle.write(piece)
    assert (tmp_path / "out.bin").read_bytes() == b"".join(p.tobytes() for p in sequence)
    if handle.direct:
        assert sizes[:2] == [2 * block, 2 * block]  # written in place, one call each


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="direct I/O is a Linux feature")
def test_a_refused_in_place_write_turns_buffered_too(tmp_path, monkeypatch):
    # The first write is whole aligned blocks (written in place) and the file system refuses it.
    def refuse(fd, data, offset):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(writers.os, "pwrite", refuse)
    first = lazy.aligned_empty(writers._DIRECT_ALIGN, np.uint8)
    first[:] = np.arange(first.size) % 253
    pieces = [first, np.arange(777, dtype=np.uint8)]
    with writers.SequentialFile(tmp_path / "out.bin") as handle:
        for piece in pieces:
            handle.write(piece)
    assert not handle.direct
    assert (tmp_path / "out.bin").read_bytes() == b"".join(p.tobytes() for p in pieces)
