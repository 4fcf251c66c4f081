"""Per-file reports for the batch mode: ``<stem>_summary.json`` and ``<stem>_overview.png``.

This module never imports Qt. The summary and the overview are computed here, in the
calling process; the PNG is drawn by :mod:`aptviewer.ui.overview_png` in a child process
(``python -m aptviewer.ui.overview_png``) that gets the overview through a temporary
``.npz`` file beside the output, so ``aptviewer --batch`` runs on machines without a
display and without paying for the Qt import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .core.diagnostics import summarize_processed_dataset
from .core.errors import AptViewerError
from .core.lazy import DEFAULT_CHUNK_SIZE, LazyTable
from .core.overview import DatasetOverview, processed_dataset_overview
from .core.readers import open_any
from .core.writers import atomic_output

logger = logging.getLogger(__name__)

_META_KEY = "__meta__"


class PlotRenderError(AptViewerError, RuntimeError):
    """The child process that draws the overview PNG failed."""


# ---------------------------------------------------------------------------------------
# JSON and .npz
# ---------------------------------------------------------------------------------------


def json_safe(value):
    """``value`` with NumPy scalars/arrays as Python numbers/lists and NaN/inf as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def save_overview_npz(overview: DatasetOverview, path) -> Path:
    """Save a :class:`DatasetOverview` to ``path`` (``.npz``, no pickles)."""
    arrays, meta, absent = {}, {}, []
    for item in dataclasses.fields(overview):
        value = getattr(overview, item.name)
        if isinstance(value, np.ndarray):
            arrays[item.name] = value
        elif value is None:
            absent.append(item.name)
        else:
            meta[item.name] = value
    meta["_absent"] = absent
    arrays[_META_KEY] = np.array(json.dumps(json_safe(meta)))
    path = Path(path)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def load_overview_npz(path) -> DatasetOverview:
    """Load a :class:`DatasetOverview` saved by :func:`save_overview_npz`."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data[_META_KEY]))
        fields = {name: data[name] for name in data.files if name != _META_KEY}
    fields.update({name: None for name in meta.pop("_absent", [])})
    fields.update(meta)
    known = {item.name for item in dataclasses.fields(DatasetOverview)}
    return DatasetOverview(**{k: v for k, v in fields.items() if k in known})


# ---------------------------------------------------------------------------------------
# The PNG, drawn in a child process
# ---------------------------------------------------------------------------------------


def render_overview_png_subprocess(overview: DatasetOverview, png_path, *, title: str = "",
                                   timeout: float = 300.0) -> Path:
    """Draw ``overview`` to ``png_path`` with ``python -m aptviewer.ui.overview_png``.

    The overview goes to the child through a temporary ``.npz`` beside the output,
    removed afterwards. The child runs on Qt's offscreen platform.

    Raises
    ------
    PlotRenderError
        If the child fails or times out (its error output is in the message).
    """
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    handle, npz_name = tempfile.mkstemp(prefix=f".{png_path.stem}.", suffix=".npz", dir=png_path.parent)
    os.close(handle)
    npz = Path(npz_name)
    try:
        save_overview_npz(overview, npz)
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        command = [sys.executable, "-m", "aptviewer.ui.overview_png", str(npz), str(png_path), "--title", title]
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise PlotRenderError(f"{png_path}: drawing the overview took longer than {timeout:g} s") from exc
        if done.returncode != 0:
            tail = "\n".join((done.stderr or "").strip().splitlines()[-8:])
            raise PlotRenderError(f"{png_path}: drawing the overview failed (exit code {done.returncode}): {tail}")
        if done.stderr.strip():
            logger.debug("overview renderer said: %s", done.stderr.strip())
    finally:
        with contextlib.suppress(OSError):
            npz.unlink()
    return png_path


# ---------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------


def _phase(progress_callback, offset: list, phases_left: int):
    """A progress callback for one of the report's passes, counting on from earlier passes.

    The total announced is this pass's rows times the passes left, so that a progress bar
    runs once from 0 to 100 % over the whole report.
    """
    if progress_callback is None:
        return None

    def report(done, total):
        progress_callback(offset[0] + int(done), offset[0] + int(total) * phases_left)

    return report


def write_file_report(source_or_path, json_path, png_path=None, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                      mc_max: float = 100.0, tof_max: float = 5000.0, bin_size: float = 0.1,
                      detector_bins: int = 256, history_max_points: int = 100_000, tof_bin_size: float = 1.0,
                      detector_range=None, title: str | None = None, progress_callback=None, cancel=None,
                      render_timeout: float = 300.0) -> dict:
    """Compute a file's summary and overview once; write the JSON and (optionally) the PNG.

    Parameters
    ----------
    source_or_path : path-like, LazyTable, DataFrame or mapping of arrays
        A data file (opened read-only with :func:`~aptviewer.core.readers.open_any` and
        closed again) or data already open.
    json_path : path-like or None
        The summary JSON (not written when ``None``), written atomically: the summary of
        :func:`~aptviewer.core.diagnostics.summarize_processed_dataset` plus ``source``,
        ``format``, ``file_size_bytes``, ``table_columns``, ``columns`` (role -> column used) and
        ``overview_binning``. NaN and infinities are written as ``null``.
    png_path : path-like, optional
        The overview PNG, drawn headless in a child process (this process never imports
        Qt). Skipped when ``None``.
    chunk_size, mc_max, tof_max, bin_size, detector_bins, history_max_points, tof_bin_size, detector_range
        As for :func:`~aptviewer.core.overview.processed_dataset_overview`.
    title : str, optional
        Heading of the PNG (default: the file name).
    progress_callback, cancel
        Progress ``(done, total)`` over both passes and a cancel flag, as in the core.

    Returns
    -------
    dict
        The report that was written to ``json_path``.

    Raises
    ------
    PlotRenderError
        If the PNG could not be drawn (the JSON is written by then).
    """
    path = None
    if isinstance(source_or_path, (str, os.PathLike)):
        path = Path(source_or_path)
        context = open_any(path)
    else:
        context = contextlib.nullcontext(source_or_path)
    with context as source:
        columns = list(source.columns) if hasattr(source, "columns") else list(source)
        if isinstance(source, LazyTable):
            path = path or source.path
            data_format = source.format
        else:
            data_format = "dataframe" if hasattr(source, "columns") else "arrays"
        offset = [0]
        summary = summarize_processed_dataset(source, chunk_size, progress_callback=_phase(progress_callback, offset, 2),
                                              cancel=cancel)
        offset[0] += summary["num_rows"]
        overview = processed_dataset_overview(source, mc_max, tof_max, bin_size, detector_bins, history_max_points,
                                              chunk_size, tof_bin_size=tof_bin_size, detector_range=detector_range,
                                              progress_callback=_phase(progress_callback, offset, 1), cancel=cancel)
    report = {
        "source": str(path) if path is not None else None,
        "format": data_format,
        "file_size_bytes": path.stat().st_size if path is not None and path.is_file() else None,
        "table_columns": [str(c) for c in columns],
        **summary,
        "columns": dict(overview.columns),
        "overview_binning": dict(overview.binning),
    }
    report = json_safe(report)
    if json_path is not None:
        json_path = Path(json_path)
        with atomic_output(json_path, inputs=[path] if path is not None else []) as temp:
            with open(temp, "w", encoding="utf-8") as handle:
                json.dump(report, handle, indent=2, allow_nan=False)
                handle.write("\n")
        logger.info("wrote %s", json_path)
    if png_path is not None:
        if path is not None and Path(png_path).resolve() == path.resolve():
            raise ValueError(f"{png_path}: refusing to overwrite the input file; choose another output path")
        heading = title if title is not None else (path.name if path is not None else "")
        render_overview_png_subprocess(overview, png_path, title=heading, timeout=render_timeout)
        logger.info("wrote %s", png_path)
    return report
