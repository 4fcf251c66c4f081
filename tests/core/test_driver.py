"""The one chunk driver: every chunk size, every source kind, cancel within a chunk, progress in rows."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aptviewer.core import OperationCancelled, open_epos, read_epos, write_epos
from aptviewer.core.accumulate import ZeroColumns, chunked_histogram, chunked_histogram2d
from aptviewer.core.driver import drive, iter_chunks


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=1_000), "b": np.arange(1_000, dtype=np.int64),
                         "c": rng.uniform(size=1_000).astype(np.float32)})


@settings(max_examples=40, deadline=None)
@given(chunk_size=st.integers(1, 1_200), start=st.integers(0, 1_000), length=st.integers(0, 1_100),
       kind=st.sampled_from(["frame", "mapping"]))
def test_chunks_are_the_rows_in_order_for_any_chunk_size(frame, chunk_size, start, length, kind):
    source = frame if kind == "frame" else {name: frame[name].to_numpy() for name in frame}
    stop = start + length
    seen, progress = [], []
    for lo, chunk in iter_chunks(source, ["c", "a"], chunk_size, start=start, stop=stop,
                                 progress_callback=lambda d, t: progress.append((d, t))):
        assert list(chunk) == ["c", "a"] and len(chunk["a"]) <= chunk_size
        seen.append((lo, chunk["a"].copy(), chunk["c"].copy()))
    expected_stop = min(stop, 1_000)
    expected_a = frame["a"].to_numpy()[start:expected_stop]
    got_a = np.concatenate([s[1] for s in seen]) if seen else np.empty(0)
    np.testing.assert_array_equal(got_a, expected_a)
    assert [s[0] for s in seen] == list(range(start, expected_stop, chunk_size))
    # Progress after each chunk, in rows of the file, never beyond the rows streamed.
    assert [d for d, _ in progress] == [min(lo + chunk_size, expected_stop) for lo, *_ in seen]
    assert all(t == expected_stop and d <= t for d, t in progress)


def test_a_lazy_table_is_read_in_one_sweep_per_chunk(demo_epos, monkeypatch):
    from aptviewer.core.lazy import LazyTable

    calls = []
    original = LazyTable.read_rows

    def counting(self, names, lo, hi, out=None, **options):
        calls.append((tuple(names), lo, hi))
        return original(self, names, lo, hi, out, **options)

    monkeypatch.setattr(LazyTable, "read_rows", counting)
    with open_epos(demo_epos) as table:
        chunks = list(iter_chunks(table, ["m/n (Da)", "det_x (mm)"], 7_000))
        np.testing.assert_array_equal(np.concatenate([c["det_x (mm)"] for _, c in chunks]), table["det_x (mm)"][:])
    # Each chunk read once, all columns together (the read-ahead threads may read them in any order).
    assert sorted(calls, key=lambda call: call[1]) == \
        [(("m/n (Da)", "det_x (mm)"), lo, min(lo + 7_000, 30_000)) for lo in range(0, 30_000, 7_000)]


def test_cancel_stops_before_the_next_chunk_is_read(frame):
    stop = threading.Event()
    read = []
    with pytest.raises(OperationCancelled, match="table: cancelled"):
        for lo, chunk in iter_chunks(frame, ["a"], 100, cancel=stop):
            read.append(lo)
            stop.set()
    assert read == [0]
    with pytest.raises(OperationCancelled):  # a cancel during the last chunk is seen too
        for _ in iter_chunks(frame, ["a"], 5_000, cancel=stop.is_set):
            pass


def test_drive_feeds_every_consumer_the_union_of_their_columns(frame):
    class Recorder:
        def __init__(self, columns):
            self.needed_columns = columns
            self.starts, self.keys = [], set()

        def update(self, chunk, start):
            self.starts.append(start)
            self.keys |= set(chunk)

    one, two = Recorder(["a"]), Recorder(["b", "a"])
    zeros = ZeroColumns(["a", "b"])
    after = []
    rows = drive(frame, [one, two, zeros], 300, on_chunk=after.append)
    assert rows == 1_000 and after == [300, 600, 900, 1_000]
    assert one.starts == two.starts == [0, 300, 600, 900]
    assert one.keys == two.keys == {"a", "b"}
    assert zeros.result() == []


def test_zero_columns_finds_the_unrecorded_ones_for_any_chunk_size():
    data = {"tof": np.zeros(100), "v": np.r_[np.zeros(99), 1.0], "nan": np.r_[np.nan, np.zeros(99)],
            "i": np.zeros(100, dtype=np.uint32)}
    for chunk_size in (1, 7, 100):
        zeros = ZeroColumns(list(data))
        drive(data, [zeros], chunk_size)
        assert zeros.result() == ["tof", "i"]  # NaN is a value, not "not recorded"
    empty = ZeroColumns(["x"])
    drive({"x": np.zeros(0)}, [empty], 10)
    assert empty.result() == []  # no rows: nothing to say


def test_writers_report_progress_and_stop_on_cancel(demo_epos, tmp_path):
    progress = []
    with open_epos(demo_epos) as table:
        write_epos(table, tmp_path / "copy.epos", chunk_size=10_000, progress_callback=lambda d, t: progress.append(d))
        assert progress == [10_000, 20_000, 30_000]
        with pytest.raises(OperationCancelled):
            write_epos(table, tmp_path / "never.epos", chunk_size=10_000, cancel=lambda: True)
    pd.testing.assert_frame_equal(read_epos(tmp_path / "copy.epos"), read_epos(demo_epos))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.epos"]


def test_chunked_histograms_report_progress_and_stop_on_cancel(demo_epos):
    with open_epos(demo_epos) as table:
        done = []
        lock = threading.Lock()

        def progress(d, t):
            with lock:
                done.append((d, t))

        counts, _ = chunked_histogram(table["m/n (Da)"], 100, (0, 100), chunk_size=4_000, progress_callback=progress)
        assert counts.sum() > 0 and sorted(done)[-1] == (30_000, 30_000) and len(done) == 8
        with pytest.raises(OperationCancelled):
            chunked_histogram(table["m/n (Da)"], 100, (0, 100), chunk_size=4_000, cancel=lambda: True)
        with pytest.raises(OperationCancelled):
            chunked_histogram2d(table["det_x (mm)"], table["det_y (mm)"], 16, chunk_size=4_000, cancel=lambda: True)


def test_consumers_split_into_tasks_run_in_parallel_and_see_one_chunk_at_a_time():
    import threading

    from aptviewer.core.driver import drive

    class Split:
        needed_columns = ["a"]

        def __init__(self):
            self.sums, self.threads = [0, 0], set()
            self.lock = threading.Lock()

        def update(self, chunk, start):
            for task in self.tasks(chunk, start):
                task()

        def tasks(self, chunk, start):
            def part(k):
                def run():
                    with self.lock:
                        self.threads.add(threading.get_ident())
                    self.sums[k] += int(chunk["a"][k::2].sum())
                return run
            return [part(0), part(1)]

    class OverridesUpdate(Split):
        def update(self, chunk, start):  # tasks must not bypass an overriding update
            self.sums[0] += int(chunk["a"].sum())

    data = {"a": np.arange(10_001)}
    split, plain = Split(), OverridesUpdate()
    assert drive(data, [split, plain], chunk_size=1_000) == 10_001
    assert sum(split.sums) == plain.sums[0] == int(data["a"].sum()) and plain.sums[1] == 0
    assert split.sums[0] == sum(int(data["a"][lo:lo + 1_000][0::2].sum()) for lo in range(0, 10_001, 1_000))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), chunk_size=st.integers(1, 60), data=st.data())
def test_the_zero_check_drops_recorded_columns_and_still_finds_late_values(n, chunk_size, data):

    columns = {f"c{k}": np.zeros(n, dtype=np.float32) for k in range(4)}
    for name in ("c1", "c2", "c3"):  # c0 stays all zero; the others get one value somewhere
        if data.draw(st.booleans()):
            columns[name][data.draw(st.integers(0, n - 1))] = data.draw(st.sampled_from([1.0, -2.0, np.nan]))
    zeros = ZeroColumns(list(columns))
    assert drive(columns, [zeros], chunk_size) == n
    assert zeros.result() == [name for name, values in columns.items() if not np.any(values != 0)]


# The monkeypatch is the same for every example (made[-1] is the example's pass).
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk_size=st.integers(500, 12_000), keep=st.booleans(), big=st.booleans(), data=st.data())
def test_a_file_is_read_into_reused_arrays_and_a_kept_chunk_is_never_overwritten(demo_epos, monkeypatch,
                                                                                  chunk_size, keep, big, data):
    from aptviewer.core import driver, lazy

    # A file "larger than the memory" is streamed past the page cache (direct I/O for
    # these three fields, where the file system allows it) with more chunks read ahead.
    monkeypatch.setattr(lazy, "memory_budget", lambda: 0 if big else 1 << 40)

    made = []

    class Recorded(driver._ChunkBuffers):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(driver, "_ChunkBuffers", Recorded)
    names = ["m/n (Da)", "det_x (mm)", "ipp"]
    with open_epos(demo_epos) as table:
        assert table.streams_past_cache(names) == big
        expected = {name: table[name][:] for name in names}
        n = len(table)
        # A consumer that keeps some chunks (a view of one is enough) and copies the others.
        kept_at = set(data.draw(st.sets(st.sampled_from(range(0, n, chunk_size)), max_size=4))) if keep else set()
        got, kept = {name: [] for name in names}, {}
        for lo, chunk in iter_chunks(table, names, chunk_size):
            if lo in kept_at:
                kept[lo] = {name: values[1:] for name, values in chunk.items()}
            for name in names:
                got[name].append(chunk[name].copy())
    for name in names:
        np.testing.assert_array_equal(np.concatenate(got[name]), expected[name])
        for lo, values in kept.items():
            np.testing.assert_array_equal(values[name], expected[name][lo + 1:lo + chunk_size])
    chunks = len(range(0, n, chunk_size))
    if chunks > 1:
        # The chunks read ahead + 2 sets of arrays serve a whole pass (being read, yielded,
        # the one before); a kept chunk's arrays are never reused: each costs a set of its own.
        ahead = driver.READ_AHEAD_PAST_CACHE if big else driver.READ_AHEAD
        assert made[-1].allocated <= ahead + 2 + len(kept_at)


@settings(max_examples=40, deadline=None)
@given(chunk_size=st.integers(1, 12_000), first_chunk=st.integers(1, 12_000) | st.none(),
       start=st.integers(0, 31_000), length=st.integers(0, 31_000), kind=st.sampled_from(["file", "frame"]))
def test_a_smaller_first_chunk_then_whole_chunks_cover_the_rows_in_order(demo_epos, demo_records, chunk_size,
                                                                        first_chunk, start, length, kind):
    stop = min(start + length, 30_000)
    expected = demo_records["m/n (Da)"][start:stop].astype(np.float32)
    with open_epos(demo_epos) as table:
        source = table if kind == "file" else pd.DataFrame({"m/n (Da)": table["m/n (Da)"][:]})
        seen, progress = [], []
        for lo, chunk in iter_chunks(source, ["m/n (Da)"], chunk_size, start=start, stop=start + length,
                                     first_chunk=first_chunk, progress_callback=lambda d, t: progress.append(d)):
            seen.append((lo, chunk["m/n (Da)"].copy()))
    got = np.concatenate([values for _, values in seen]) if seen else np.empty(0, np.float32)
    np.testing.assert_array_equal(got, expected)
    sizes = [len(values) for _, values in seen]
    assert [lo for lo, _ in seen] == list(np.cumsum([start] + sizes[:-1])) if seen else stop <= start
    if seen and first_chunk is not None and first_chunk < chunk_size:
        assert sizes[0] == min(first_chunk, stop - start)
        assert all(size == chunk_size for size in sizes[1:-1]) and sizes[-1] <= chunk_size
    elif seen:
        assert all(size == chunk_size for size in sizes[:-1]) and sizes[-1] <= chunk_size
    assert progress == [lo + size for (lo, _), size in zip(seen, sizes)]
