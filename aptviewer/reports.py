"""The overview PNG of the batch mode, drawn in a child process, and the report in one call.

This module never imports Qt. The report itself is computed by
:func:`aptviewer.workflows.run_file_report`; the PNG is drawn by
:mod:`aptviewer.ui.overview_png` in a child process that gets each overview through a
temporary ``.npz`` file beside the output, so ``aptviewer --batch`` runs on machines
without a display. :class:`PngRenderer` keeps **one** child for a whole run (Qt starts
once, not once per file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from .core.errors import AptViewerError
from .core.lazy import DEFAULT_CHUNK_SIZE
from .core.overview import DatasetOverview
from .workflows.naming import check_not_an_input
from .workflows.params import Binning, ReportParameters
from .workflows.report import json_safe, run_file_report, write_summary_json

logger = logging.getLogger(__name__)

_META_KEY = "__meta__"


class PlotRenderError(AptViewerError, RuntimeError):
    """The child process that draws the overview PNG failed."""


# ---------------------------------------------------------------------------------------
# JSON and .npz
# ---------------------------------------------------------------------------------------


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


class PngRenderer:
    """One child process (``python -m aptviewer.ui.overview_png --serve``) drawing every PNG of a run.

    Started on the first :meth:`render`; a child that dies or hangs is reported as
    :class:`PlotRenderError` for that figure and replaced on the next one. Use as a context
    manager (or call :meth:`close`).
    """

    def __init__(self, timeout: float = 300.0):
        self.timeout = float(timeout)
        self._process = None
        self._answers: queue.Queue | None = None
        self._stderr = None
        self.started = 0  # child processes started (1 for a healthy run)

    def _start(self) -> None:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._process = subprocess.Popen([sys.executable, "-m", "aptviewer.ui.overview_png", "--serve"], env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                         text=True)
        self.started += 1
        answers = self._answers = queue.Queue()
        stdout = self._process.stdout

        def read_answers():
            for line in stdout:
                answers.put(line)
            answers.put(None)  # the child ended

        threading.Thread(target=read_answers, name="aptviewer-png-answers", daemon=True).start()

    def _error_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return "\n".join(self._stderr.read().strip().splitlines()[-8:])

    def _stop(self, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
            if kill:
                process.kill()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def render(self, overview: DatasetOverview, png_path, *, title: str = "") -> Path:
        """Draw ``overview`` to ``png_path`` (written atomically by the child).

        Raises
        ------
        PlotRenderError
            If the figure could not be drawn (the child's error is in the message).
        """
        return self._render("overview", lambda npz: save_overview_npz(overview, npz), png_path, title)

    def render_multihit(self, snapshot, png_path, *, title: str = "") -> Path:
        """Draw a multi-hit analysis (:class:`~aptviewer.core.multihit.MultihitSnapshot`) to ``png_path``."""
        from .workflows.multihit import save_snapshot_npz

        return self._render("multihit", lambda npz: save_snapshot_npz(snapshot, npz), png_path, title)

    def _render(self, kind: str, save, png_path, title: str) -> Path:
        png_path = Path(png_path)
        png_path.parent.mkdir(parents=True, exist_ok=True)
        handle, npz_name = tempfile.mkstemp(prefix=f".{png_path.stem}.", suffix=".npz", dir=png_path.parent)
        os.close(handle)
        npz = Path(npz_name)
        try:
            save(npz)
            if self._process is None or self._process.poll() is not None:
                self._stop()
                self._start()
            request = {"kind": kind, "data": str(npz), "output": str(png_path), "title": title}
            try:
                self._process.stdin.write(json.dumps(request) + "\n")
                self._process.stdin.flush()
                line = self._answers.get(timeout=self.timeout)
            except queue.Empty:
                self._stop(kill=True)
                raise PlotRenderError(f"{png_path}: drawing the overview took longer than {self.timeout:g} s") from None
            except OSError as exc:
                line = None
                logger.debug("renderer pipe failed: %s", exc)
            if line is None:
                tail = self._error_tail()
                self._stop(kill=True)
                raise PlotRenderError(f"{png_path}: the process drawing the overviews stopped: {tail}")
            answer = json.loads(line)
            if not answer.get("ok"):
                raise PlotRenderError(f"{png_path}: drawing the overview failed: {answer.get('error')}")
        finally:
            with contextlib.suppress(OSError):
                npz.unlink()
        logger.info("wrote %s", png_path)
        return png_path

    def close(self) -> None:
        """Let the child finish and exit."""
        self._stop()

    def __enter__(self) -> "PngRenderer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def render_overview_png_subprocess(overview: DatasetOverview, png_path, *, title: str = "",
                                   timeout: float = 300.0) -> Path:
    """Draw one ``overview`` to ``png_path`` in a child process of its own.

    For many figures use one :class:`PngRenderer` (one child for all of them).

    Raises
    ------
    PlotRenderError
        If the child fails or times out (its error output is in the message).
    """
    with PngRenderer(timeout) as renderer:
        return renderer.render(overview, png_path, title=title)


# ---------------------------------------------------------------------------------------
# The report in one call (notebooks and scripts)
# ---------------------------------------------------------------------------------------


def write_file_report(source_or_path, json_path, png_path=None, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                      binning: Binning | None = None, title: str | None = None, progress_callback=None, cancel=None,
                      renderer: PngRenderer | None = None, extras=()) -> dict:
    """Compute a file's report (:func:`aptviewer.workflows.run_file_report`); write the JSON and the PNG.

    Parameters
    ----------
    source_or_path : path-like, LazyTable, DataFrame or mapping of arrays
    json_path : path-like or None
        The summary JSON (not written when ``None``).
    png_path : path-like, optional
        The overview PNG, drawn headless in a child process (``renderer``'s, or one of its
        own). Skipped when ``None``.
    binning : Binning, optional
    title : str, optional
        Heading of the PNG (default: the file name).
    progress_callback, cancel
        As for :func:`~aptviewer.workflows.run_file_report`.
    extras : tuple of ReportExtra
        More analyses fed by the same pass.

    Returns
    -------
    dict
        The summary JSON's content.

    Raises
    ------
    PlotRenderError
        If the PNG could not be drawn (the JSON is written by then).
    """
    params = ReportParameters(binning=binning or Binning(), chunk_size=chunk_size, extras=tuple(extras))
    report = run_file_report(source_or_path, params, progress_callback=progress_callback, cancel=cancel)
    data = report.to_json()
    if json_path is not None:
        write_summary_json(data, json_path)
    if png_path is not None:
        if report.source is not None:
            check_not_an_input(png_path, [report.source])
        heading = title if title is not None else (report.source.name if report.source is not None else "")
        if renderer is not None:
            renderer.render(report.overview, png_path, title=heading)
        else:
            render_overview_png_subprocess(report.overview, png_path, title=heading)
    return data
