"""The multi-hit analysis of one file, for the window, the batch mode and notebooks (Qt-free).

:func:`analyse_multihit` streams a table once through
:class:`~aptviewer.core.multihit.MultihitAccumulator`, handing out throttled snapshots so a
window can draw the correlation histogram growing. :func:`write_multihit_outputs` is the
batch job: the ``multihit`` section of ``<stem>_summary.json``, ``<stem>_correlation.csv``
and, optionally, ``<stem>_correlation.png`` (drawn in a child process, as the overview is).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.lazy import DEFAULT_CHUNK_SIZE
from ..core.multihit import (
    DEFAULT_MAX_MULTIPLICITY,
    EventGrouping,
    MultihitSnapshot,
    MultiplicityStats,
    check_malformed,
    describe_multiplicity,
    multihit_accumulator_for,
    stream_multihit,
)
from ..core.progress import report_progress
from ..core.readers import open_any
from ..core.writers import atomic_output

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MultihitParameters:
    """What to compute: binning (Da), which events the correlation histogram pairs, the spectra."""

    mass_range: tuple[float, float] = (0.0, 100.0)
    bin_width: float = 0.1
    correlation_multiplicity: object = "multiples"
    spectra: tuple = (("singles", 1), ("multiples", "multiples"))
    max_multiplicity: int = DEFAULT_MAX_MULTIPLICITY
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def accumulator_options(self) -> dict:
        return {"mass_range": tuple(self.mass_range), "bin_width": self.bin_width,
                "correlation_multiplicity": self.correlation_multiplicity, "spectra": dict(self.spectra),
                "max_multiplicity": self.max_multiplicity}


def analyse_multihit(source, parameters: MultihitParameters = MultihitParameters(), *, on_malformed: str = "warn",
                     on_snapshot=None, snapshot_interval_s: float = 0.1, progress_callback=None,
                     cancel=None) -> MultihitSnapshot:
    """Stream ``source`` once and return the :class:`MultihitSnapshot` of the whole table.

    Parameters
    ----------
    source : LazyTable, DataFrame or mapping of arrays
    parameters : MultihitParameters
    on_malformed : ``'warn'``, ``'raise'`` or ``'report'``
        As in :func:`~aptviewer.core.multihit.stream_multihit`; ``'report'`` only counts the
        events that fit no convention (in ``snapshot.stats``), for callers that show them
        themselves (a worker thread must not issue warnings).
    on_snapshot : callable, optional
        ``on_snapshot(snapshot)`` at most every ``snapshot_interval_s`` while streaming (the
        first chunk always), with copies the caller may keep.
    progress_callback, cancel
        ``progress_callback(rows_done, rows_total)`` and a cancel flag, as in the core.
    """
    accumulator = multihit_accumulator_for(source, **parameters.accumulator_options())
    last = [float("-inf")]

    def progress(done, total):
        report_progress(progress_callback, done, total)
        now = time.perf_counter()
        if on_snapshot is not None and now - last[0] >= snapshot_interval_s and done < total:
            last[0] = now
            on_snapshot(accumulator.snapshot())

    return stream_multihit(source, accumulator, chunk_size=parameters.chunk_size, on_malformed=on_malformed,
                           progress_callback=progress, cancel=cancel)


class MultihitExtra:
    """The multi-hit analysis as an extra of another pass over a file (``name`` = ``"multihit"``).

    The report's pass feeds it chunk by chunk in table order (events cut by a chunk
    boundary are carried over); its result is the ``multihit`` JSON section, and
    :attr:`snapshot` keeps the whole analysis (for the CSV and the figure). One instance
    serves one file.
    """

    name = "multihit"

    def __init__(self, parameters: MultihitParameters = MultihitParameters()):
        self.parameters = parameters
        self.snapshot: MultihitSnapshot | None = None

    def make(self, source):
        accumulator = multihit_accumulator_for(source, **self.parameters.accumulator_options())
        return _MultihitConsumer(self, accumulator, str(getattr(source, "path", None) or "the data"))


class _MultihitConsumer:
    def __init__(self, extra: MultihitExtra, accumulator, what: str):
        self.extra = extra
        self.accumulator = accumulator
        self.what = what

    @property
    def needed_columns(self) -> list[str]:
        return list(self.accumulator.needed_columns)

    def update(self, chunk, start: int = 0) -> None:
        self.accumulator.update(chunk)

    def result(self) -> dict:
        self.accumulator.finish()
        snapshot = self.extra.snapshot = self.accumulator.snapshot()
        check_malformed(snapshot, self.what)
        return multihit_summary(snapshot)


def multihit_summary(snapshot: MultihitSnapshot) -> dict:
    """The ``multihit`` section of the summary JSON: statistics, binning and pairs counted."""
    section = snapshot.stats.as_dict()
    section["mass_column"] = snapshot.mass_column
    if snapshot.correlation_counts is not None:
        edges = snapshot.correlation_edges
        section["correlation"] = {
            "multiplicity": describe_multiplicity(snapshot.correlation_multiplicity),
            "range_da": [float(edges[0]), float(edges[-1])],
            "bin_width_da": float(edges[1] - edges[0]),
            "bins": int(edges.size - 1),
            "pairs": int(snapshot.correlation_pairs),
            "pairs_in_range": int(snapshot.correlation_counts.sum()),
        }
    return section


def write_correlation_csv(path, counts: np.ndarray, edges: np.ndarray, *, source: str = "",
                          multiplicity="multiples") -> Path:
    """Write the correlation histogram atomically, one row per non-empty bin.

    Columns: ``m/n_1_start (Da)``, ``m/n_1_end (Da)``, ``m/n_2_start (Da)``,
    ``m/n_2_end (Da)``, ``pairs``. Empty bins are left out (a 1000 x 1000 histogram is
    mostly empty); the ``#`` lines before the header give the binning, so the full grid can
    be rebuilt.
    """
    counts = np.asarray(counts)
    edges = np.asarray(edges, dtype=np.float64)
    if counts.ndim != 2 or counts.shape != (edges.size - 1, edges.size - 1):
        raise ValueError(f"counts of shape {counts.shape} do not match {edges.size} edges on both axes")
    ix, iy = np.nonzero(counts)
    path = Path(path)
    with atomic_output(path) as temp:
        with open(temp, "w", newline="", encoding="utf-8") as handle:
            what = f" of {source}" if source else ""
            handle.write(f"# correlation histogram{what}: pairs of ions of the same event "
                         f"({describe_multiplicity(multiplicity)}), m/n 1 <= m/n 2\n")
            handle.write(f"# {edges.size - 1} x {edges.size - 1} bins from {float(edges[0])!r} to {float(edges[-1])!r} "
                         "Da; only non-empty bins are listed\n")
            writer = csv.writer(handle)
            writer.writerow(["m/n_1_start (Da)", "m/n_1_end (Da)", "m/n_2_start (Da)", "m/n_2_end (Da)", "pairs"])
            writer.writerows(zip((repr(float(v)) for v in edges[ix]), (repr(float(v)) for v in edges[ix + 1]),
                                 (repr(float(v)) for v in edges[iy]), (repr(float(v)) for v in edges[iy + 1]),
                                 (int(c) for c in counts[ix, iy])))
    return path


def save_snapshot_npz(snapshot: MultihitSnapshot, path) -> Path:
    """The arrays the PNG renderer needs, in an ``.npz`` without pickles."""
    stats = snapshot.stats
    multiplicity = snapshot.correlation_multiplicity
    meta = {"source": snapshot.source, "rows_total": snapshot.rows_total, "rows_processed": snapshot.rows_processed,
            "convention": snapshot.grouping.convention, "column": snapshot.grouping.column,
            "mass_column": snapshot.mass_column, "malformed": [stats.malformed_events, stats.malformed_ions],
            "first_malformed_row": stats.first_malformed_row, "pairs": snapshot.correlation_pairs,
            "multiplicity": list(multiplicity) if isinstance(multiplicity, tuple) else multiplicity,
            "spectra": list(snapshot.spectra)}
    arrays = {"correlation_counts": snapshot.correlation_counts, "correlation_edges": snapshot.correlation_edges,
              "events": snapshot.stats.events, "meta": np.array(json.dumps(meta))}
    for i, (counts, edges) in enumerate(snapshot.spectra.values()):
        arrays[f"spectrum_{i}_counts"], arrays[f"spectrum_{i}_edges"] = counts, edges
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return Path(path)


def load_snapshot_npz(path) -> MultihitSnapshot:
    """A :class:`MultihitSnapshot` (what a drawing needs) from :func:`save_snapshot_npz`."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        spectra = {name: (data[f"spectrum_{i}_counts"], data[f"spectrum_{i}_edges"])
                   for i, name in enumerate(meta["spectra"])}
        grouping = EventGrouping(meta["convention"], meta["column"])
        stats = MultiplicityStats(data["events"], grouping.convention, grouping.column, *meta["malformed"],
                                  meta["first_malformed_row"])
        multiplicity = meta["multiplicity"]
        return MultihitSnapshot(rows_total=meta["rows_total"], rows_processed=meta["rows_processed"],
                                source=meta["source"], grouping=grouping, mass_column=meta["mass_column"],
                                stats=stats, spectra=spectra, correlation_counts=data["correlation_counts"],
                                correlation_edges=data["correlation_edges"],
                                correlation_multiplicity=tuple(multiplicity) if isinstance(multiplicity, list)
                                else multiplicity, correlation_pairs=meta["pairs"])


def render_correlation_png_subprocess(snapshot: MultihitSnapshot, png_path, *, title: str = "",
                                      timeout: float = 300.0) -> Path:
    """Draw the multi-hit figure to ``png_path`` in a child process of its own (offscreen).

    For many figures use one :class:`aptviewer.reports.PngRenderer` (one child for all).

    Raises
    ------
    aptviewer.reports.PlotRenderError
        If the child fails or times out (its error output is in the message).
    """
    from ..reports import PngRenderer

    with PngRenderer(timeout=timeout) as renderer:
        return renderer.render_multihit(snapshot, png_path, title=title)


def multihit_output_paths(json_path) -> dict[str, Path]:
    """``<stem>_correlation.csv`` and ``.png`` beside ``<stem>_summary.json``."""
    json_path = Path(json_path)
    stem = json_path.name[:-len("_summary.json")] if json_path.name.endswith("_summary.json") else json_path.stem
    return {"csv": json_path.with_name(f"{stem}_correlation.csv"),
            "png": json_path.with_name(f"{stem}_correlation.png")}


def write_multihit_outputs(source_or_path, json_path=None, csv_path=None, png_path=None, *,
                           parameters: MultihitParameters = MultihitParameters(), title: str | None = None,
                           progress_callback=None, cancel=None) -> dict:
    """The batch job: stream a file once, add a ``multihit`` section to its summary JSON, write the CSV (and PNG).

    Parameters
    ----------
    source_or_path : path-like or table
        Opened read-only with :func:`~aptviewer.core.readers.open_any` (and closed) when a path.
    json_path : path-like, optional
        A summary JSON to add the ``multihit`` section to (rewritten atomically; created
        when absent).
    csv_path, png_path : path-like, optional
        :func:`write_correlation_csv` and the figure of the correlation histogram,
        multiplicities and spectra (drawn in a child process; this process never imports Qt).

    Returns
    -------
    dict
        The ``multihit`` section. Events that fit no convention are left out with a
        :class:`~aptviewer.core.multihit.MultihitWarning` and counted in the section.
    """
    path = None
    if isinstance(source_or_path, (str, os.PathLike)):
        path = Path(source_or_path)
        context = open_any(path)
    else:
        context = contextlib.nullcontext(source_or_path)
    with context as source:
        path = path or getattr(source, "path", None)
        snapshot = analyse_multihit(source, parameters, progress_callback=progress_callback, cancel=cancel)
    section = multihit_summary(snapshot)
    inputs = [path] if path is not None else []
    if json_path is not None:
        json_path = Path(json_path)
        report = {}
        if json_path.exists():
            with open(json_path, encoding="utf-8") as handle:
                report = json.load(handle)
        report["multihit"] = section
        with atomic_output(json_path, inputs=inputs) as temp:
            with open(temp, "w", encoding="utf-8") as handle:
                json.dump(report, handle, indent=2, allow_nan=False)
                handle.write("\n")
    name = Path(path).name if path is not None else ""
    if csv_path is not None and snapshot.correlation_counts is not None:
        for forbidden in inputs:
            if Path(csv_path).resolve() == Path(forbidden).resolve():
                raise ValueError(f"{csv_path}: refusing to overwrite the input file; choose another output path")
        write_correlation_csv(csv_path, snapshot.correlation_counts, snapshot.correlation_edges, source=name,
                              multiplicity=snapshot.correlation_multiplicity)
    if png_path is not None and snapshot.correlation_counts is not None:
        render_correlation_png_subprocess(snapshot, png_path, title=title if title is not None else name)
    return section
