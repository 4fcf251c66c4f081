"""Headless batch mode: ``aptviewer --batch PATH [PATH ...]``. Never imports Qt."""

from __future__ import annotations

import logging
from pathlib import Path

from .core import DEFAULT_CHUNK_SIZE, chunked_min_max, open_any
from .core.roles import find_roles

logger = logging.getLogger(__name__)

DATA_SUFFIXES = (".epos", ".pos", ".h5", ".hdf5")


def iter_input_files(paths, recursive: bool = False):
    """Data files named by ``paths`` (files as given; folders scanned for data files)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            yield from sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
        else:
            yield path


def describe_file(path, chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[str]:
    """Lines of a short summary of one file: format, rows, columns, min/max of the main columns."""
    with open_any(path) as table:
        lines = [f"{path}", f"  format: {table.format}   rows: {table.n_rows:,}   columns: {len(table.columns)}",
                 f"  columns: {', '.join(table.columns)}"]
        for role in find_roles(table.columns).values():
            try:
                low, high = chunked_min_max(table[role.name], chunk_size)
                lines.append(f"  {role.name:>18}: {low:.6g} .. {high:.6g}")
            except ValueError:
                lines.append(f"  {role.name:>18}: no finite values")
    return lines


def run_batch(args, parser) -> int:
    """Run the batch mode for parsed ``args``; return the process exit code."""
    if not args.paths:
        parser.error("--batch needs at least one file or folder")
    failed = 0
    for path in iter_input_files(args.paths, args.recursive):
        try:
            print("\n".join(describe_file(path, args.chunk_size or DEFAULT_CHUNK_SIZE)))
        except (OSError, ValueError) as exc:
            failed += 1
            print(f"FAILED {path}: {exc}")
    return 1 if failed else 0
