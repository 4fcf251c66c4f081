"""Headless batch mode: ``aptviewer --batch PATH [PATH ...]``. Never imports Qt.

The console front end of the workflows (:mod:`aptviewer.workflows`): it finds the inputs,
turns the flags into parameters, prints progress and the closing table, and handles
Ctrl-C. Every data file gets its report (:func:`~aptviewer.workflows.run_file_report`:
``<stem>_summary.json`` and, drawn by one child process for the whole run,
``<stem>_overview.png``). With ``--instrument KEY`` every file with detector coordinates
is also reflectron-corrected (:func:`~aptviewer.workflows.run_correction`) into
``<stem>_corrected.h5`` (and ``<stem>_corrected.epos`` with ``--save-epos``, from the same
pass). Outputs go beside the input or under ``--output-dir``; same-stem inputs of one
folder get the extension in their output names (:mod:`aptviewer.workflows.naming`). One
bad file is reported and the rest go on; a closing table lists what was done, skipped and
failed, including atom probe files in unsupported formats and broken links.

Exit codes: 0 when every file succeeded (or was skipped), 1 when any failed, 2 for usage
errors, 130 after Ctrl-C (which stops the running file within one chunk, leaving no
partial output).
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .core import DEFAULT_CHUNK_SIZE, OperationCancelled
from .core.progress import is_cancelled
from .workflows.naming import CORRECTED_SUFFIX, InputFile, check_not_an_input, plan_outputs
from .workflows.opening import SUPPORTED_SUFFIXES, UnsupportedFormatError, is_atom_probe_file

logger = logging.getLogger(__name__)

DATA_SUFFIXES = SUPPORTED_SUFFIXES
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
#: Suffix of every output stem: ``run.epos`` -> ``run_corrected.h5``.
OUTPUT_SUFFIX = CORRECTED_SUFFIX


# ---------------------------------------------------------------------------------------
# Finding the inputs
# ---------------------------------------------------------------------------------------


def collect_inputs(paths, recursive: bool = False, suffixes: Sequence[str] | None = None) -> list[InputFile]:
    """The files named by ``paths``: files as given, folders scanned for atom probe files.

    A folder scan lists every entry with an atom probe extension: the supported ones,
    the unsupported ones (reported as skipped) and broken links or unreadable entries
    (reported as failed); ``suffixes`` narrows it to those extensions. Each file is listed
    once (the first time it is named). Missing paths are kept, so that processing them
    reports the error.
    """
    seen: set[Path] = set()
    found: list[InputFile] = []

    def add(item: InputFile) -> None:
        key = item.path.absolute() if item.path.is_symlink() and not item.path.exists() else item.path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(item)

    def wanted(child: Path) -> bool:
        if child.name.startswith("."):
            return False
        if suffixes is not None:
            return child.suffix.lower() in suffixes
        return is_atom_probe_file(child)

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            for child in sorted(path.glob(pattern)):
                if wanted(child) and not child.is_dir():
                    add(InputFile(child, path))
        else:
            add(InputFile(path))
    return found


def iter_input_files(paths, recursive: bool = False):
    """Data files named by ``paths`` (files as given; folders scanned for data files)."""
    for item in collect_inputs(paths, recursive):
        yield item.path


# ---------------------------------------------------------------------------------------
# The summary of one file
# ---------------------------------------------------------------------------------------


def format_report(report: dict) -> list[str]:
    """A file's report (see :func:`aptviewer.reports.write_file_report`) as printed lines."""
    size = report.get("file_size_bytes")
    lines = [f"{report.get('source')}",
             f"  format: {report.get('format')}   rows: {report.get('num_rows', 0):,}"
             + (f"   size: {size / 1e6:,.1f} MB" if size is not None else ""),
             f"  columns: {', '.join(report.get('table_columns', []))}"]
    names = list(dict.fromkeys(report.get("columns", {}).values()))
    not_recorded = set(report.get("not_recorded", []))
    if names:
        width = max(len(n) for n in names)
        lines.append(f"  {'':>{width}}  {'min':>12} {'median':>12} {'max':>12}")
    for name in names:
        values = [report.get(f"{name}_{stat}") for stat in ("min", "median", "max")]
        if name in not_recorded:
            lines.append(f"  {name:>{width}}  not recorded (all zero)")
        elif all(v is None for v in values):
            lines.append(f"  {name:>{width}}  no finite values")
        else:
            lines.append(f"  {name:>{width}}  " + " ".join(f"{v:>12.6g}" if v is not None else f"{'-':>12}"
                                                          for v in values))
    others = [name for name in report.get("not_recorded", []) if name not in names]
    if others:
        lines.append(f"  not recorded (all zero): {', '.join(others)}")
    return lines


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to one input file."""

    path: Path
    status: str             # done, skipped, failed, cancelled, or planned (dry run)
    detail: str = ""
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)      # what its job printed, where it ran elsewhere
    warnings: list[str] = field(default_factory=list)   # warnings raised while processing it


def _write(stream, text: str) -> None:
    """One line (or block) of console output, flushed at once so logs of long runs stay current."""
    stream.write(text + "\n")
    stream.flush()


class _Console:
    """Progress and messages: a tqdm bar per file on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool, stdout=None, stderr=None):
        self.quiet = quiet
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        self.tty = bool(getattr(self.err, "isatty", lambda: False)())

    def say(self, text: str = "") -> None:
        if not self.quiet:
            _write(self.out, text)

    def error(self, text: str) -> None:
        _write(self.err, text)

    def phase(self, label: str, progress, text: str) -> None:
        """Show that a new phase of the file's work starts (the bar then restarts)."""
        if self.quiet:
            return
        if progress is not None and hasattr(progress, "bar"):
            progress.bar.set_description(f"{label}, {text}")
            progress.bar.reset()
            return
        if progress is not None and hasattr(progress, "reported"):
            progress.reported[0] = -1
        _write(self.out, f"  {label}: {text}")

    @contextmanager
    def progress(self, label: str, unit: str = "rows"):
        """Yield a ``callback(done, total)`` that draws this file's progress."""
        if self.quiet:
            yield None
            return
        if self.tty:
            from tqdm import tqdm

            bar = tqdm(total=0, desc=label, unit=unit, unit_scale=True, file=self.err, leave=False,
                       dynamic_ncols=True)

            def update(done, total):
                if bar.total != total:
                    bar.reset(total=total)
                    bar.update(done)
                else:
                    bar.update(done - bar.n)

            update.bar = bar
            try:
                yield update
            finally:
                bar.close()
            return
        reported = [-1]

        def plain(done, total):
            # A line at every tenth, so logs of overnight runs stay short.
            tenth = 10 * done // total if total else 10
            if tenth > reported[0]:
                reported[0] = tenth
                _write(self.out, f"  {label}: {10 * tenth:3d}% ({done:,} / {total:,} {unit})")

        plain.reported = reported
        yield plain

    def table(self, outcomes: list[Outcome], dry_run: bool) -> None:
        counts = {status: sum(o.status == status for o in outcomes)
                  for status in ("done", "planned", "skipped", "failed", "cancelled")}
        shown = ", ".join(f"{n} {status}" for status, n in counts.items() if n or status in ("done", "skipped",
                                                                                             "failed"))
        title = "Dry run (nothing written)" if dry_run else "Batch finished"
        lines = [f"{title}: {len(outcomes)} file{'s' * (len(outcomes) != 1)}: {shown}"]
        if outcomes:
            width = max(len(str(o.path)) for o in outcomes)
            lines.append(f"  {'status':<9} {'file':<{width}}  {'time':>7}  detail")
            for o in outcomes:
                lines.append(f"  {o.status:<9} {str(o.path):<{width}}  {o.seconds:6.1f}s  {o.detail}".rstrip())
        _write(self.out, "\n".join(lines))


# ---------------------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------------------


@contextmanager
def _ctrl_c_cancels(event: threading.Event):
    """While active, the first Ctrl-C sets ``event`` (the running file stops within a chunk);
    a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if event.is_set():
            raise KeyboardInterrupt
        event.set()
        _write(sys.stderr, "\ncancelling: the current file stops after this chunk (Ctrl-C again to abort at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------------------------------
# The batch run
# ---------------------------------------------------------------------------------------


def output_paths(item: InputFile, output_dir: Path | None, *, correct: bool = False, save_epos: bool = False,
                 plots: bool = True, shared_stem: bool = False, composition: bool = False,
                 multihit: bool = False) -> dict[str, Path]:
    """Where the outputs of ``item`` go (see :mod:`aptviewer.workflows.naming`).

    Keys: ``h5`` and, with ``save_epos``, ``epos`` when correcting; ``json`` (the summary)
    and ``png`` (the overview, with ``plots``); ``composition_csv`` with ``composition``;
    ``correlation_csv`` (and ``correlation_png`` with ``plots``) with ``multihit``.
    """
    from .workflows.naming import output_paths as paths_of

    return paths_of(item, output_dir, kinds=_kinds(correct, save_epos, plots, composition, multihit),
                    shared_stem=shared_stem)


def _kinds(correct: bool, save_epos: bool, plots: bool, composition: bool = False,
           multihit: bool = False) -> tuple[str, ...]:
    return (("h5",) if correct else ()) + (("epos",) if correct and save_epos else ()) + ("json",) + \
        (("png",) if plots else ()) + (("composition_csv",) if composition else ()) + \
        (("correlation_csv",) + (("correlation_png",) if plots else ()) if multihit else ())


def _message(exc: BaseException, path: Path) -> str:
    """The error message without the leading file name (the table shows the file)."""
    text = str(exc) or type(exc).__name__
    for prefix in (f"{path}: ", f"{path.resolve()}: ", f"{path.absolute()}: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text if path.name in text else f"{type(exc).__name__}: {text}"


def binning_from_args(args):
    """The :class:`~aptviewer.workflows.params.Binning` of the batch flags (``ValueError`` if invalid)."""
    from .workflows.params import Binning

    given = {"mass_range": getattr(args, "mass_range", None), "mass_bin": getattr(args, "mass_bin", None),
             "tof_range": getattr(args, "tof_range", None), "tof_bin": getattr(args, "tof_bin", None),
             "detector_bins": getattr(args, "detector_bins", None)}
    return Binning(**{name: tuple(value) if isinstance(value, list) else value
                      for name, value in given.items() if value is not None})


def report_extras(args) -> tuple:
    """The extra analyses fed by every file's report pass, from the flags (``--ranges``...).

    Each is a :class:`~aptviewer.workflows.report.ReportExtra`; its result goes to the
    summary JSON under its name. They share the report's one pass over the file.
    """
    return ()


@dataclass(frozen=True)
class FileOptions:
    """What every file of a run gets done: the parsed flags a file's job needs (picklable)."""

    preset: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    binning: object = None            # workflows.params.Binning (None: the defaults)
    ranges: object = None             # LoadedRanges, "auto" or None (see aptviewer.workflows.composition)
    background: bool = False
    multihit: bool = False
    extras: tuple = ()                # further report extras (see report_extras)


@dataclass(frozen=True)
class FileJob:
    """One planned input file: the outputs it writes (``todo``) and the options.

    The one per-file job of the batch: the serial loop runs it here, and on a Dask cluster
    each task runs it on a worker (see :mod:`aptviewer.cluster`). It is picklable.
    """

    item: InputFile
    todo: dict
    options: FileOptions

    @property
    def path(self) -> Path:
        return self.item.path

    @property
    def listed(self) -> str:
        return ", ".join(str(p) for p in self.todo.values())

    def run(self, console, renderer, cancel) -> Outcome:
        """Do the work; raises for a failure (see :func:`run_file_job`)."""
        item, todo = self.item, self.todo
        for output in todo.values():
            output.parent.mkdir(parents=True, exist_ok=True)
        rows = None
        if "h5" in todo or "epos" in todo:
            rows = self.correct(console, renderer, cancel)
            if rows is None:
                return Outcome(item.path, "skipped", "no detector x/y columns to correct")
        note = ""
        if set(todo) - {"h5", "epos"}:
            note = self.report(console, renderer, cancel)
        done = f"{rows:,} rows corrected; " if rows is not None else ""
        return Outcome(item.path, "done", f"{done}wrote {self.listed}{note}")

    def correct(self, console, renderer, cancel) -> int | None:
        item, todo = self.item, self.todo
        from .core.errors import DataFormatError
        from .workflows.correction import run_correction
        from .workflows.params import CorrectionParameters

        params = CorrectionParameters(input_path=item.path, output_h5=todo.get("h5"), preset=self.options.preset,
                                      chunk_size=self.options.chunk_size, output_epos=todo.get("epos"),
                                      hit_map_bins=0)
        with console.progress(f"{item.path.name} (correction)") as progress:
            try:
                result = run_correction(params, progress_callback=progress, cancel=cancel)
            except DataFormatError as exc:
                if item.root is not None and "needs a detector" in str(exc):
                    return None  # found in a folder: a POS file has nothing to correct
                raise
        console.say(f"{item.path}: {result.rows:,} rows corrected")
        return result.rows

    def file_extras(self, console) -> tuple[tuple, str]:
        """The extras of this file's report pass beyond the run's, and a note for the table.

        ``--ranges auto`` finds the range file beside each input: an input without one
        gets no composition (said in the note); one whose range file is unreadable fails.
        """
        item = self.item
        extras = ()
        if self.options.multihit:
            from .workflows.multihit import MultihitExtra, MultihitParameters

            extras += (MultihitExtra(MultihitParameters(chunk_size=self.options.chunk_size)),)
        if self.options.ranges is None:
            return extras, ""
        from .workflows.composition import CompositionExtra, CompositionParameters, NoRangeFileError, load_ranges

        ranges = self.options.ranges
        if isinstance(ranges, str):
            try:
                ranges = load_ranges(ranges, item.path)
            except NoRangeFileError as exc:
                console.say(f"{item.path}: no composition: {exc.problem}")
                return extras, f"; no composition ({exc.problem})"
            for text in ranges.warnings:
                console.error(f"warning: {text}")
        background = self.options.background
        params = CompositionParameters(ranges.ranges, ranges.path, background=background,
                                       chunk_size=self.options.chunk_size)
        note = f"; composition from {ranges.path.name}" + (" (background subtracted)" if background else "")
        return extras + (CompositionExtra(params),), note

    def report(self, console, renderer, cancel) -> str:
        item, todo = self.item, self.todo
        from .workflows.params import Binning, ReportParameters
        from .workflows.report import run_file_report, write_summary_json

        extras, note = self.file_extras(console)
        params = ReportParameters(binning=self.options.binning or Binning(), chunk_size=self.options.chunk_size,
                                  extras=self.options.extras + extras)
        label = f"{item.path.name} (summary)"
        with console.progress(label) as progress:
            report = run_file_report(item.path, params, progress_callback=progress, cancel=cancel,
                                     phase_callback=lambda text: console.phase(label, progress, text)
                                     if text != "reading" else None)
        if "json" in todo:
            write_summary_json(report, todo["json"])
        console.say("\n".join(format_report(report.to_json())))
        composition = report.extras.get("composition")
        if composition is not None:
            from .workflows.composition import describe, write_composition_csv

            if "composition_csv" in todo:
                write_composition_csv(composition, todo["composition_csv"], inputs=[item.path])
            console.say(f"{item.path}: {describe(composition)}")
        if "png" in todo:
            renderer.render(report.overview, todo["png"], title=item.path.name)
        multihit = next((extra for extra in extras if extra.name == "multihit"), None)
        if multihit is not None and multihit.snapshot is not None:
            self.write_multihit(console, renderer, multihit.snapshot)
        return note

    def write_multihit(self, console, renderer, snapshot) -> None:
        """``--multihit``: the correlation CSV and figure (the JSON section came with the report)."""
        item, todo = self.item, self.todo
        from .workflows.multihit import write_correlation_csv

        if snapshot.correlation_counts is None:
            console.say(f"{item.path}: multi-hit statistics only (no mass-to-charge column to pair)")
        elif "correlation_csv" in todo:
            write_correlation_csv(todo["correlation_csv"], snapshot.correlation_counts, snapshot.correlation_edges,
                                  source=item.path.name, multiplicity=snapshot.correlation_multiplicity)
        if "correlation_png" in todo and snapshot.correlation_counts is not None:
            renderer.render_multihit(snapshot, todo["correlation_png"], title=item.path.name)
        stats = snapshot.stats
        share = f"{100 * stats.fraction_in_multiples:.1f} % of the ions" if stats.total_ions else "no ions"
        console.say(f"{item.path}: {stats.total_events:,} events, {share} in multiples")


def _outcome_of_error(exc: BaseException, path: Path) -> Outcome:
    """The outcome of a file whose planning or job raised ``exc``."""
    if isinstance(exc, OperationCancelled):
        return Outcome(path, "cancelled", "stopped by Ctrl-C; no output left")
    if isinstance(exc, UnsupportedFormatError):
        return Outcome(path, "skipped", _message(exc, path))
    logger.debug("batch: %s failed", path, exc_info=exc)
    return Outcome(path, "failed", _message(exc, path))


def run_file_job(job: FileJob, console, renderer, cancel=None) -> Outcome:
    """Run ``job`` and return its outcome; never raises: a failure is a ``failed`` outcome.

    Warnings raised while it runs are collected in ``outcome.warnings``.
    """
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome = job.run(console, renderer, cancel)
        except Exception as exc:  # one bad file must not stop the batch
            outcome = _outcome_of_error(exc, job.path)
    outcome.warnings = [str(w.message) for w in caught]
    outcome.seconds = time.perf_counter() - start
    return outcome


class _Batch:
    def __init__(self, args, console: _Console, cancel: threading.Event, options: FileOptions, renderer=None):
        self.args = args
        self.console = console
        self.cancel = cancel
        self.options = options
        self.renderer = renderer
        self.claimed: dict[Path, Path] = {}  # output -> the input that writes it
        self.plans: dict[Path, dict[str, Path]] = {}
        self.inputs: list[Path] = []

    def plan_all(self, items: list[InputFile]) -> list[FileJob | Outcome]:
        """Plan every file (where the run starts): its job, or the outcome that settles it."""
        options = self.options
        kinds = _kinds(options.preset is not None, self.args.save_epos, not self.args.no_plots,
                       options.ranges is not None, options.multihit)
        self.plans = plan_outputs(items, self.args.output_dir, kinds=kinds)
        self.inputs = [item.path for item in items]
        planned = []
        for item in items:
            try:
                planned.append(self.plan(item))
            except Exception as exc:  # one bad file must not stop the batch
                planned.append(_outcome_of_error(exc, item.path))
        return planned

    def plan(self, item: InputFile) -> FileJob | Outcome:
        """The job of one file, or the outcome (skipped, planned) that settles it at once."""
        from .workflows.opening import check_format

        check_format(item.path)  # the format first: unsupported, missing, broken link, text...
        if self.options.preset is not None and item.root is not None and item.path.stem.endswith(OUTPUT_SUFFIX):
            return Outcome(item.path, "skipped", "looks like a corrected output (name ends in _corrected)")
        outputs = self.plans[item.path]
        for output in outputs.values():
            check_not_an_input(output, self.inputs, owner=item.path)
            other = self.claimed.get(output.resolve())
            if other is not None:
                raise ValueError(f"{item.path}: its output {output} would overwrite that of {other}")
        for output in outputs.values():
            self.claimed[output.resolve()] = item.path
        todo = outputs if self.args.overwrite else {k: p for k, p in outputs.items() if not p.exists()}
        if not todo:
            existing = ", ".join(str(p) for p in outputs.values())
            return Outcome(item.path, "skipped", f"outputs exist: {existing} (use --overwrite)")
        job = FileJob(item, todo, self.options)
        if self.args.dry_run:
            return Outcome(item.path, "planned", f"-> {job.listed}")
        return job

    def show(self, outcome: Outcome) -> None:
        """Print what a settled file needs said: its plan, warnings, failure."""
        if outcome.status == "planned":
            self.console.say(f"would write {outcome.detail.removeprefix('-> ')} from {outcome.path}")
        for text in outcome.warnings:
            self.console.error(f"warning: {text}")
        if outcome.status == "failed":
            self.console.error(f"FAILED {outcome.path}: {outcome.detail}")

    def run(self, items: list[InputFile]) -> list[Outcome]:
        """The serial run: plan every file, then do them one after the other."""
        outcomes = []
        for planned in self.plan_all(items):
            if isinstance(planned, Outcome):
                outcome = planned
            elif is_cancelled(self.cancel):
                outcome = Outcome(planned.path, "cancelled", "not started (Ctrl-C)")
            else:
                outcome = run_file_job(planned, self.console, self.renderer, self.cancel)
            self.show(outcome)
            outcomes.append(outcome)
        return outcomes

    def run_on_cluster(self, items: list[InputFile], workers: int | None, scheduler: str | None) -> list[Outcome]:
        """Plan here, then run every planned file as one Dask task (see :mod:`aptviewer.cluster`)."""
        from . import cluster

        planned = self.plan_all(items)
        outcomes: list = list(planned)
        for outcome in planned:
            if isinstance(outcome, Outcome):
                self.show(outcome)
        todo = [i for i, job in enumerate(planned) if isinstance(job, FileJob)]
        if not todo:
            return outcomes
        if is_cancelled(self.cancel):
            for i in todo:
                outcomes[i] = Outcome(planned[i].path, "cancelled", "not started (Ctrl-C)")
            return outcomes
        run = cluster.connect(workers=workers, scheduler=scheduler)
        try:
            self.console.say(f"{run.description}: started in {run.start_seconds:.1f} s; {len(todo)} file"
                             f"{'s' * (len(todo) != 1)} to process")
            jobs = [cluster.ClusterJob(planned[i].path, functools.partial(cluster.run_file_job_on_worker, planned[i]),
                                       tuple(planned[i].todo.values())) for i in todo]
            done = cluster.run_jobs(run, jobs, self.console, self.cancel)
        finally:
            run.close()
        for i, outcome in zip(todo, done):
            outcomes[i] = outcome
        return outcomes


def _list_instruments(console: _Console) -> None:
    from .core.reflectron import list_builtin_presets

    presets = list_builtin_presets()
    width = max(map(len, presets))
    _write(console.out, "Built-in reflectron presets (--instrument KEY; case, spaces and dashes are ignored):")
    for key, name in presets.items():
        _write(console.out, f"  {key:<{width}}  {name}")
    console.out.flush()


def run_batch(args, parser) -> int:
    """Run the batch mode for parsed ``args``; return the process exit code."""
    console = _Console(getattr(args, "quiet", False))
    if args.list_instruments:
        _list_instruments(console)
        if not args.paths:
            return EXIT_OK
    if not args.paths:
        parser.error("--batch needs at least one file or folder")
    if args.save_epos and not args.instrument:
        parser.error("--save-epos needs --instrument (it writes the corrected EPOS)")
    if args.output_dir is not None and args.output_dir.exists() and not args.output_dir.is_dir():
        parser.error(f"--output-dir {args.output_dir} is a file, not a folder")
    try:
        binning = binning_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    preset = None
    if args.instrument:
        from .core.reflectron import load_builtin_preset

        try:
            preset = load_builtin_preset(args.instrument).key
        except ValueError as exc:
            parser.error(f"--instrument: {exc}")
    ranges = None
    if getattr(args, "ranges", None):
        from .workflows.composition import AUTO, load_ranges

        try:
            ranges = AUTO if args.ranges.lower() == AUTO else load_ranges(args.ranges)
        except (ValueError, OSError) as exc:
            parser.error(f"--ranges: {exc}")
        for text in getattr(ranges, "warnings", ()):
            console.error(f"warning: {text}")
    elif getattr(args, "background", False):
        parser.error("--background needs --ranges")
    workers, scheduler = getattr(args, "workers", None), getattr(args, "scheduler", None)
    on_cluster = (workers is not None or bool(scheduler)) and not args.dry_run
    if workers is not None and scheduler:
        parser.error("--workers and --scheduler exclude each other")
    if workers is not None and workers < 1:
        parser.error("--workers must be a positive number of processes")
    if on_cluster:
        from .cluster import ClusterUnavailableError, import_distributed

        try:
            import_distributed()
        except ClusterUnavailableError as exc:
            console.error(f"aptviewer: {exc}")
            return EXIT_USAGE
    items = collect_inputs(args.paths, args.recursive)
    if not items:
        console.say("no data files found in: " + ", ".join(map(str, args.paths)))
    cancel = threading.Event()
    options = FileOptions(preset=preset, chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE, binning=binning,
                          ranges=ranges, background=bool(getattr(args, "background", False)),
                          multihit=bool(getattr(args, "multihit", False)), extras=report_extras(args))
    from .reports import PngRenderer

    with _ctrl_c_cancels(cancel), PngRenderer() as renderer:
        batch = _Batch(args, console, cancel, options, renderer)
        if on_cluster:
            try:
                outcomes = batch.run_on_cluster(items, workers, scheduler)
            except ClusterUnavailableError as exc:
                console.error(f"aptviewer: {exc}")
                return EXIT_FAILED
        else:
            outcomes = batch.run(items)
    console.table(outcomes, args.dry_run)
    if any(o.status == "cancelled" for o in outcomes):
        return EXIT_CANCELLED
    return EXIT_FAILED if any(o.status == "failed" for o in outcomes) else EXIT_OK
