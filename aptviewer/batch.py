"""Headless batch mode: ``aptviewer --batch PATH [PATH ...]``. Never imports Qt.

Without ``--instrument`` every data file gets a short summary (format, rows, columns and
the range of its main columns). With ``--instrument KEY`` every EPOS file is
reflectron-corrected into ``<stem>_corrected.h5`` (and ``<stem>_corrected.epos`` with
``--save-epos``), beside the input or under ``--output-dir``. One bad file is reported and
the rest go on; a closing table lists what was done, skipped and failed.

Exit codes: 0 when every file succeeded (or was skipped), 1 when any failed, 2 for usage
errors, 130 after Ctrl-C (which stops the running file within one chunk, leaving no
partial output).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .core import DEFAULT_CHUNK_SIZE, OperationCancelled
from .core.progress import is_cancelled, raise_if_cancelled

logger = logging.getLogger(__name__)

DATA_SUFFIXES = (".epos", ".pos", ".h5", ".hdf5")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
#: Suffix of every output stem: ``run.epos`` -> ``run_corrected.h5``.
OUTPUT_SUFFIX = "_corrected"


# ---------------------------------------------------------------------------------------
# Finding the inputs
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFile:
    """A file to process and, when it was found in a folder PATH, that folder."""

    path: Path
    root: Path | None = None


def collect_inputs(paths, recursive: bool = False, suffixes: Sequence[str] = DATA_SUFFIXES) -> list[InputFile]:
    """The files named by ``paths``: files as given, folders scanned for ``suffixes``.

    Each file is listed once (the first time it is named). Missing paths are kept, so
    that processing them reports the error.
    """
    seen: set[Path] = set()
    found: list[InputFile] = []

    def add(item: InputFile) -> None:
        key = item.path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(item)

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            for child in sorted(path.glob(pattern)):
                if child.is_file() and child.suffix.lower() in suffixes and not child.name.startswith("."):
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
    if names:
        width = max(len(n) for n in names)
        lines.append(f"  {'':>{width}}  {'min':>12} {'median':>12} {'max':>12}")
    for name in names:
        values = [report.get(f"{name}_{stat}") for stat in ("min", "median", "max")]
        if all(v is None for v in values):
            lines.append(f"  {name:>{width}}  no finite values")
        else:
            lines.append(f"  {name:>{width}}  " + " ".join(f"{v:>12.6g}" if v is not None else f"{'-':>12}"
                                                          for v in values))
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
                 plots: bool = True, composition: bool = False) -> dict[str, Path]:
    """Where the outputs of ``item`` go, beside the input or under ``output_dir``.

    Keys: ``json`` (the summary) and ``png`` (the overview, with ``plots``) always; ``h5``
    and, with ``save_epos``, ``epos`` when correcting. Under ``output_dir`` the sub-folders
    of a folder PATH are mirrored.
    """
    if output_dir is None:
        folder = item.path.parent
    elif item.root is not None:
        folder = output_dir / item.path.parent.relative_to(item.root)
    else:
        folder = output_dir
    stem = item.path.stem
    outputs = {}
    if correct:
        outputs["h5"] = folder / f"{stem}{OUTPUT_SUFFIX}.h5"
        if save_epos:
            outputs["epos"] = folder / f"{stem}{OUTPUT_SUFFIX}.epos"
    outputs["json"] = folder / f"{stem}_summary.json"
    if plots:
        outputs["png"] = folder / f"{stem}_overview.png"
    if composition:
        outputs["composition_csv"] = folder / f"{stem}_composition.csv"
    return outputs


def _message(exc: BaseException, path: Path) -> str:
    """The error message without the leading file name (the table shows the file)."""
    text = str(exc) or type(exc).__name__
    for prefix in (f"{path}: ", f"{path.resolve()}: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text if path.name in text else f"{type(exc).__name__}: {text}"


class _Batch:
    def __init__(self, args, console: _Console, mesh, cancel: threading.Event, ranges=None):
        self.args = args
        self.ranges = ranges  # LoadedRanges, "auto" or None (see aptviewer.workflows.composition)
        self.console = console
        self.mesh = mesh
        self.cancel = cancel
        self.chunk_size = args.chunk_size or DEFAULT_CHUNK_SIZE
        self.claimed: dict[Path, Path] = {}  # output -> the input that writes it

    def run(self, items: list[InputFile]) -> list[Outcome]:
        outcomes = []
        for item in items:
            if is_cancelled(self.cancel):
                outcomes.append(Outcome(item.path, "cancelled", "not started (Ctrl-C)"))
                continue
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    outcome = self.process(item)
                except OperationCancelled:
                    outcome = Outcome(item.path, "cancelled", "stopped by Ctrl-C; no output left")
                except Exception as exc:  # one bad file must not stop the batch
                    logger.debug("batch: %s failed", item.path, exc_info=True)
                    outcome = Outcome(item.path, "failed", _message(exc, item.path))
            for warning in caught:
                self.console.error(f"warning: {warning.message}")
            outcome.seconds = time.perf_counter() - start
            if outcome.status == "failed":
                self.console.error(f"FAILED {item.path}: {outcome.detail}")
            outcomes.append(outcome)
        return outcomes

    def process(self, item: InputFile) -> Outcome:
        """Correct (with an instrument) and report one file, skipping outputs that exist."""
        args = self.args
        outputs = output_paths(item, args.output_dir, correct=self.mesh is not None, save_epos=args.save_epos,
                               plots=not args.no_plots, composition=self.ranges is not None)
        for output in outputs.values():
            other = self.claimed.get(output.resolve())
            if other is not None:
                raise ValueError(f"{item.path}: its output {output} would overwrite that of {other}")
        for output in outputs.values():
            self.claimed[output.resolve()] = item.path
        if not item.path.exists():
            raise FileNotFoundError(f"{item.path}: no such file or folder")
        if self.mesh is not None:
            if item.path.suffix.lower() != ".epos":
                raise ValueError(f"{item.path}: the reflectron correction needs an EPOS file (.epos)")
            if item.root is not None and item.path.stem.endswith(OUTPUT_SUFFIX):
                return Outcome(item.path, "skipped", "looks like a corrected output (name ends in _corrected)")
        todo = outputs if args.overwrite else {k: p for k, p in outputs.items() if not p.exists()}
        if not todo:
            existing = ", ".join(str(p) for p in outputs.values())
            return Outcome(item.path, "skipped", f"outputs exist: {existing} (use --overwrite)")
        listed = ", ".join(str(p) for p in todo.values())
        if args.dry_run:
            self.console.say(f"would write {listed} from {item.path}")
            return Outcome(item.path, "planned", f"-> {listed}")
        for output in todo.values():
            output.parent.mkdir(parents=True, exist_ok=True)
        rows = self.correct(item, todo) if "h5" in todo or "epos" in todo else None
        if "json" in todo or "png" in todo:
            self.report(item, todo)
        note = self.compose(item, todo) if self.ranges is not None else ""
        done = f"{rows:,} rows corrected; " if rows is not None else ""
        return Outcome(item.path, "done", f"{done}wrote {listed}{note}")

    def compose(self, item: InputFile, todo: dict[str, Path]) -> str:
        from .workflows.composition import compose_file

        with self.console.progress(f"{item.path.name} (composition)") as progress:
            outcome = compose_file(item.path, self.ranges, csv_path=todo.get("composition_csv"),
                                   json_path=todo.get("json"), background=self.args.background,
                                   chunk_size=self.chunk_size, cancel=self.cancel, progress_callback=progress)
        for text in outcome.warnings:
            self.console.error(f"warning: {text}")
        self.console.say(f"{item.path}: {outcome.summary}")
        return outcome.note

    def correct(self, item: InputFile, todo: dict[str, Path]) -> int:
        from .core import reflectron

        if "epos" in todo:
            # The EPOS writer needs the whole frame: the eager path writes both outputs.
            raise_if_cancelled(self.cancel, str(item.path))
            self.console.say(f"{item.path}: correcting in memory (--save-epos)...")
            result = reflectron.correct_epos_file(item.path, self.mesh, output_epos_path=todo["epos"],
                                                  output_h5_path=todo.get("h5"))
        else:
            with self.console.progress(f"{item.path.name} (correction)") as progress:
                result = reflectron.correct_epos_streaming(item.path, self.mesh, todo["h5"],
                                                           chunk_size=self.chunk_size, progress_callback=progress,
                                                           cancel=self.cancel)
        self.console.say(f"{item.path}: {result['rows']:,} rows corrected")
        return int(result["rows"])

    def report(self, item: InputFile, todo: dict[str, Path]) -> None:
        from .reports import write_file_report

        with self.console.progress(f"{item.path.name} (summary)") as progress:
            report = write_file_report(item.path, todo.get("json"), todo.get("png"), chunk_size=self.chunk_size,
                                       progress_callback=progress, cancel=self.cancel)
        self.console.say("\n".join(format_report(report)))


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
    mesh = None
    if args.instrument:
        from .core.reflectron import load_builtin_preset

        try:
            mesh = load_builtin_preset(args.instrument)
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
    suffixes = (".epos",) if mesh is not None else DATA_SUFFIXES
    items = collect_inputs(args.paths, args.recursive, suffixes)
    if not items:
        console.say("no data files found in: " + ", ".join(map(str, args.paths)))
    cancel = threading.Event()
    with _ctrl_c_cancels(cancel):
        outcomes = _Batch(args, console, mesh, cancel, ranges).run(items)
    console.table(outcomes, args.dry_run)
    if any(o.status == "cancelled" for o in outcomes):
        return EXIT_CANCELLED
    return EXIT_FAILED if any(o.status == "failed" for o in outcomes) else EXIT_OK
