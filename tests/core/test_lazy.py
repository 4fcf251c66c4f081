"""LazyColumn / LazyTable over memory-mapped EPOS files, against plain NumPy reads."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aptviewer.core import DEFAULT_CHUNK_SIZE, LazyColumn, TableClosedError, open_epos
from aptviewer.core.readers import EPOS_COLUMNS


def test_default_chunk_size_is_one_mebirow():
    assert DEFAULT_CHUNK_SIZE == 1 << 20


def test_table_shape_and_columns(demo_epos, demo_records):
    with open_epos(demo_epos) as table:
        assert table.columns == EPOS_COLUMNS
        assert table.n_rows == len(table) == len(demo_records)
        assert "m/n (Da)" in table and "nope" not in table
        assert table.format == "epos"
        with pytest.raises(KeyError, match="columns are: x \\(nm\\)"):
            table["mass"]


def test_column_is_native_endian_and_ndarray_compatible(demo_epos, demo_records):
    with open_epos(demo_epos) as table:
        column = table["TOF (ns)"]
        assert isinstance(column, LazyColumn)
        assert column.name == "TOF (ns)"
        assert column.dtype == np.dtype("float32") and column.dtype.isnative
        assert table["ipp"].dtype == np.dtype("uint32")
        assert column.shape == (len(demo_records),) and len(column) == len(demo_records)
        expected = demo_records["TOF (ns)"].astype(np.float32)
        np.testing.assert_array_equal(np.asarray(column), expected)
        np.testing.assert_array_equal(column.to_numpy(dtype=np.float64), expected.astype(np.float64))
        # A function that takes an ndarray takes the column.
        assert np.mean(column) == pytest.approx(float(np.mean(expected)))
        assert np.asarray(column).dtype.isnative


@settings(max_examples=60, deadline=None)
@given(start=st.integers(-40_000, 40_000), stop=st.integers(-40_000, 40_000) | st.none(),
       step=st.sampled_from([None, 1, 2, 7, -1, -3]))
def test_slices_match_numpy(demo_epos, demo_records, start, stop, step):
    key = slice(start, stop, step)
    with open_epos(demo_epos) as table:
        got = table["det_x (mm)"][key]
    expected = demo_records["det_x (mm)"][key]
    assert isinstance(got, np.ndarray) and got.dtype.isnative
    np.testing.assert_array_equal(got, expected)


def test_integer_and_fancy_indexing(demo_epos, demo_records):
    with open_epos(demo_epos) as table:
        column = table["pslep"]
        assert column[3] == demo_records["pslep"][3]
        assert column[-1] == demo_records["pslep"][-1]
        assert np.isscalar(column[0])
        with pytest.raises(IndexError, match="out of range"):
            column[len(demo_records)]
        picks = np.array([5, 1, 29_999, 1])
        np.testing.assert_array_equal(column[picks], demo_records["pslep"][picks])
        mask = demo_records["ipp"] == 2
        np.testing.assert_array_equal(column[mask], demo_records["pslep"][mask])


@settings(max_examples=25, deadline=None)
@given(chunk_size=st.integers(97, 40_000))
def test_iter_chunks_cover_the_table_in_order(demo_epos, demo_records, chunk_size):
    names = ["m/n (Da)", "ipp"]
    with open_epos(demo_epos) as table:
        chunks = list(table.iter_chunks(names, chunk_size=chunk_size))
    assert all(set(c) == set(names) for c in chunks)
    assert all(len(c["ipp"]) <= chunk_size for c in chunks)
    for name in names:
        np.testing.assert_array_equal(np.concatenate([c[name] for c in chunks]), demo_records[name])


def test_iter_chunks_row_range_and_bad_chunk_size(demo_epos, demo_records):
    with open_epos(demo_epos) as table:
        single = list(table.iter_chunks(["ipp"], chunk_size=1, start=100, stop=400))
        assert len(single) == 300 and all(len(c["ipp"]) == 1 for c in single)
        np.testing.assert_array_equal(np.concatenate([c["ipp"] for c in single]), demo_records["ipp"][100:400])
        chunks = list(table.iter_chunks(["x (nm)"], chunk_size=1000, start=2500, stop=7001))
        with pytest.raises(ValueError, match="chunk_size"):
            next(table.iter_chunks(chunk_size=0))
    np.testing.assert_array_equal(np.concatenate([c["x (nm)"] for c in chunks]), demo_records["x (nm)"][2500:7001])


def test_to_dataframe_equals_eager_frame(demo_epos, demo_records):
    with open_epos(demo_epos) as table:
        frame = table.to_dataframe(chunk_size=4097)
        head = table.head(3, columns=["z (nm)"])
    expected = pd.DataFrame({name: demo_records[name].astype(demo_records.dtype[name].newbyteorder("="))
                             for name in EPOS_COLUMNS})
    pd.testing.assert_frame_equal(frame, expected)
    assert list(head.columns) == ["z (nm)"] and len(head) == 3


def test_subset_renames_and_shares_the_handle(demo_epos, demo_records):
    table = open_epos(demo_epos)
    small = table.subset({"m/n (Da)": "mc (Da)"})
    np.testing.assert_array_equal(small["mc (Da)"][:10], demo_records["m/n (Da)"][:10])
    small.close()
    assert table.closed
    with pytest.raises(TableClosedError):
        table["x (nm)"][:3]


def _mapped_files():
    with open("/proc/self/maps") as maps:
        return maps.read()


def test_close_releases_the_mapping_and_later_reads_fail_clearly(demo_epos):
    table = open_epos(demo_epos)
    column = table["x (nm)"]
    column[:10]
    assert str(demo_epos) in _mapped_files()
    table.close()
    assert str(demo_epos) not in _mapped_files()
    with pytest.raises(TableClosedError, match="closed"):
        column[:10]
    with pytest.raises(TableClosedError):
        next(table.iter_chunks())
    table.close()  # closing twice is harmless


def test_context_manager_closes(demo_epos):
    with open_epos(demo_epos) as table:
        pass
    assert table.closed


def test_to_dataframe_reports_progress_and_can_be_cancelled(demo_epos):
    import threading

    from aptviewer.core import OperationCancelled

    seen = []
    with open_epos(demo_epos) as table:
        frame = table.to_dataframe(chunk_size=7000, progress_callback=lambda done, total: seen.append((done, total)))
        assert len(frame) == table.n_rows
        assert sorted(seen)[-1] == (table.n_rows, table.n_rows) and len(seen) == 5
        stop = threading.Event()
        stop.set()
        with pytest.raises(OperationCancelled, match="cancelled"):
            table.to_dataframe(chunk_size=7000, cancel=stop)


@pytest.mark.parametrize("value, expected", [("1", 1), ("", None), ("lots", None), ("0", 1)])
def test_the_threads_of_whole_file_operations_can_be_capped(value, expected):
    import os
    import subprocess
    import sys

    code = "from aptviewer.core.lazy import PARALLEL_THREADS; print(PARALLEL_THREADS)"
    env = dict(os.environ, APTVIEWER_THREADS=value)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    default = max(1, min(4, os.cpu_count() or 1))
    assert int(out) == (default if expected is None else min(default, expected))


# -- the read paths of record files: memory map, buffered pread, direct I/O ---------------

_RECORD = np.dtype([("a", ">f4"), ("b", ">i8"), ("c", ">f4")])  # 16 bytes: rows straddle 4 KiB pages


@pytest.fixture(scope="module")
def record_file(tmp_path_factory):
    """A file of a 3-byte header and 20,000 big-endian records (a section at an odd offset)."""
    rng = np.random.default_rng(5)
    records = np.zeros(20_000, dtype=_RECORD)
    records["a"], records["b"], records["c"] = rng.random(20_000), rng.integers(-9, 9, 20_000), rng.random(20_000)
    path = tmp_path_factory.mktemp("records") / "r.bin"
    path.write_bytes(b"hdr" + records.tobytes() + b"tail")
    return path, records


def _store(path, big: bool, monkeypatch, direct: bool = True):
    from aptviewer.core import lazy

    # A file "larger than the memory" is dropped from the cache behind the reader, and read
    # with direct I/O where asked for and the file system allows; a small one by buffered pread.
    monkeypatch.setattr(lazy, "memory_budget", lambda: 0 if big else 1 << 40)
    monkeypatch.setattr(lazy, "USE_DIRECT_IO", direct)
    monkeypatch.setattr(lazy, "_RECORD_BLOCK", 1_000)
    monkeypatch.setattr(lazy, "_DIRECT_PART_MIN", 4_096)  # direct reads split into parallel parts
    return lazy.MappedRecords(path, _RECORD, 20_000, offset=3)


@pytest.mark.parametrize(("big", "direct"), [(False, False), (True, False), (True, True)])
@settings(max_examples=60, deadline=None)
@given(start=st.integers(0, 20_000), length=st.integers(0, 20_000))
def test_chunk_reads_equal_the_records_whatever_the_path(record_file, monkeypatch_module, big, direct, start,
                                                          length):
    path, records = record_file
    store = _store(path, big, monkeypatch_module, direct)
    try:
        if big:
            assert store.drop_behind and store._use_direct == (direct and _direct_io_works(path))
        stop = min(start + length, 20_000)
        outs = [np.empty(stop - start, dtype=np.float64), np.empty(stop - start, dtype=np.int64)]
        store.read_fields_into(["a", "b"], outs, start, stop)
        np.testing.assert_array_equal(outs[0], records["a"][start:stop].astype(np.float64))
        np.testing.assert_array_equal(outs[1], records["b"][start:stop])
    finally:
        store.close()


def _direct_io_works(path) -> bool:
    import os

    try:
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECT))
    except (AttributeError, OSError):
        return False  # not Linux, or a file system without direct I/O (tmpfs)
    return True


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_a_closed_store_refuses_chunk_reads(record_file, monkeypatch):
    store = _store(record_file[0], True, monkeypatch)
    store.close()
    with pytest.raises(TableClosedError):
        store.read_fields_into(["a"], [np.empty(10)], 0, 10)


@pytest.mark.skipif(not hasattr(__import__("os"), "setpriority"), reason="thread priorities are set on Linux only")
def test_helper_threads_run_below_the_caller():
    import os
    import threading

    from aptviewer.core import lazy

    def niceness():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    with lazy.helper_pool(1, "test") as pool:
        helper = pool.submit(niceness).result()
    assert helper == min(19, niceness() + lazy.HELPER_NICENESS)


# Runs of 4-byte fields (big- and little-endian), a field between two asked for, and an 8-byte one.
_MIXED = np.dtype([("a", ">f4"), ("b", ">u4"), ("unused", ">f4"), ("c", ">f4"), ("d", ">i8"), ("e", "<f4"),
                   ("f", "<i4")])


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory):
    rng = np.random.default_rng(9)
    records = np.zeros(20_000, dtype=_MIXED)
    for name in _MIXED.names:
        records[name] = rng.integers(-1_000, 1_000, 20_000) * (1.5 if _MIXED[name].kind == "f" else 1)
    path = tmp_path_factory.mktemp("mixed") / "m.bin"
    path.write_bytes(b"hd" + records.tobytes())
    return path, records


@pytest.mark.parametrize(("big", "direct"), [(False, None), (True, False), (True, True), (True, None)])
@settings(max_examples=40, deadline=None)
@given(fields=st.lists(st.sampled_from(_MIXED.names), min_size=1, max_size=7, unique=True),
       start=st.integers(0, 20_000), length=st.integers(0, 6_000), spare=st.integers(0, 3), allow=st.booleans())
def test_fields_laid_out_as_one_block_are_read_with_one_copy_per_block_and_exactly(
        mixed_file, monkeypatch_module, big, direct, fields, start, length, spare, allow):
    from aptviewer.core import lazy

    path, records = mixed_file
    monkeypatch_module.setattr(lazy, "memory_budget", lambda: 0 if big else 1 << 40)
    monkeypatch_module.setattr(lazy, "USE_DIRECT_IO", direct)
    monkeypatch_module.setattr(lazy, "_RECORD_BLOCK", 1_000)
    store = lazy.MappedRecords(path, _MIXED, 20_000, offset=2)
    try:
        stop = min(start + length, 20_000)
        # As the chunk driver does: arrays for a whole chunk, the first rows of them filled.
        arrays = store.empty_rows(fields, stop - start + spare)
        outs = [arrays[name][:stop - start] for name in fields]
        runs = store.field_runs(fields)
        together = store._rows_of_one_block(fields, outs)
        if stop > start:
            assert (together is not None) == (len(runs) == 1 and len(fields) > 1)
        if together is not None:
            assert together[2] <= 2 * len(fields)  # a block holds at most as many unused fields as used ones
        for run in runs:  # a run: fields of one size and byte order
            assert len({(_MIXED[f].itemsize, _MIXED[f].byteorder) for f in run}) == 1
        direct_reads = []
        read_direct = store._read_direct
        store._read_direct = lambda *args: direct_reads.append(args) or read_direct(*args)
        store.read_fields_into(fields, outs, start, stop, allow_direct=allow)
        # Files larger than a quarter of the memory: direct I/O always (1), never (0), or by
        # default for passes of DIRECT_MIN_FIELDS fields or more, and for a few rows (a
        # sample's run) whenever the file system allows it; never for a caller that says so.
        available = big and _direct_io_works(path) and direct is not False
        wanted = available and (direct is True or len(fields) >= lazy.DIRECT_MIN_FIELDS)
        assert store.reads_direct(len(fields)) == wanted
        assert bool(direct_reads) == (allow and stop > start and
                                      (wanted or (available and stop - start < lazy._RECORD_BLOCK)))
        for name in fields:
            assert arrays[name].dtype == _MIXED[name].newbyteorder("=")
            np.testing.assert_array_equal(arrays[name][:stop - start], records[name][start:stop])
    finally:
        store.close()


def test_a_callers_rows_that_look_like_a_block_are_filled_one_by_one(mixed_file):
    from aptviewer.core.lazy import MappedRecords

    path, records = mixed_file
    with contextlib.closing(MappedRecords(path, _MIXED, 20_000, offset=2)) as store:
        # Rows 0 and 2 of the caller's own array, for fields a and c (with "unused" between
        # them in the file): row 1 is the caller's data and must not be written.
        mine = np.full((3, 5_000), 7, dtype=np.uint32)
        outs = [mine[0].view(np.float32), mine[2].view(np.float32)]
        assert store._rows_of_one_block(["a", "c"], outs) is None
        store.read_fields_into(["a", "c"], outs, 100, 5_100)
        np.testing.assert_array_equal(outs[0], records["a"][100:5_100])
        np.testing.assert_array_equal(outs[1], records["c"][100:5_100])
        assert (mine[1] == 7).all()


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="reads Linux's /proc")
def test_page_aligned_buffers_are_counted_as_the_process_memory():
    # Direct I/O buffers must show in the anonymous memory the benchmarks measure (a
    # shared anonymous mapping is counted as shared memory instead).
    from aptviewer.core.lazy import aligned_empty

    def anon_mb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:")) / 1024

    before = anon_mb()
    values = aligned_empty(16 << 20, np.float32)  # 64 MB
    values.fill(1.0)
    assert values.__array_interface__["data"][0] % 4096 == 0
    assert anon_mb() - before > 60


def test_two_names_for_one_field_are_read_and_laid_out_each(demo_epos):
    # A table may show one field under two names (a caller's alias): each name gets its
    # own values, whether the arrays are the table's or laid out by empty_rows.
    from aptviewer.core.lazy import LazyTable

    with open_epos(demo_epos) as table:
        columns = {name: table[name] for name in table.columns}
        columns["mass"] = LazyColumn(table["m/n (Da)"]._source, "mass")
        aliased = LazyTable(columns, path=table.path, stores=table._stores)
        names = ["m/n (Da)", "TOF (ns)", "mass", "det_x (mm)"]
        arrays = aliased.empty_rows(names, 30_000)
        assert list(arrays) == names and arrays["mass"] is not arrays["m/n (Da)"]
        for out in (None, arrays):
            rows = aliased.read_rows(names, 0, 30_000, out)
            for name in names:
                np.testing.assert_array_equal(rows[name], table[name if name != "mass" else "m/n (Da)"][:])
