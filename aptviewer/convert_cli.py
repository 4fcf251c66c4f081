"""``aptviewer --convert SRC DST``: the console front end of :func:`aptviewer.core.convert.convert_file`.

Never imports Qt. A progress bar (tqdm) is shown when stderr is a terminal. Exit codes:
0 done, 1 the conversion failed (unreadable or unsuitable source, write error), 2 usage
error (unsupported target extension, target is the source or exists without
``--overwrite``), 130 after Ctrl-C. The target is written atomically: a failure or
Ctrl-C leaves no partial file.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .core.convert import convert_file, target_format
from .core.errors import AptViewerError
from .core.lazy import DEFAULT_CHUNK_SIZE

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def run_convert(args, parser) -> int:
    """Run ``--convert SRC DST`` from parsed arguments; return the exit code."""
    source, target = (Path(p) for p in args.convert)
    if args.paths or args.batch:
        parser.error("--convert SRC DST takes no other paths and cannot be combined with --batch")
    try:
        kind = target_format(target)
    except ValueError as exc:
        parser.error(str(exc))
    if source.exists() and target.exists() and source.resolve() == target.resolve():
        parser.error(f"{target}: the target is the source file; choose another name")
    if target.exists() and not args.overwrite:
        parser.error(f"{target} already exists; pass --overwrite to replace it")
    from tqdm import tqdm

    bar = tqdm(total=0, unit="ion", unit_scale=True, desc=f"{source.name} -> {kind.upper()}",
               disable=not sys.stderr.isatty() or args.quiet, file=sys.stderr)

    def progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    try:
        convert_file(source, target, chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE, progress_callback=progress)
    except KeyboardInterrupt:
        bar.close()
        _say(f"cancelled: {target} was not written")
        return EXIT_CANCELLED
    except (OSError, ValueError, KeyError, AptViewerError) as exc:
        bar.close()
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        _say(f"aptviewer: error: conversion failed: {message}")
        return EXIT_FAILED
    bar.close()
    if not args.quiet:
        _say(f"wrote {target} ({target.stat().st_size / 1e6:,.1f} MB)")
    return EXIT_OK
