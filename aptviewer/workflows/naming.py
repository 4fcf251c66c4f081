"""Output names, in one place: ``<stem>_summary.json``, ``<stem>_overview.png``,
``<stem>_corrected.h5``, ``<stem>_corrected.epos``, ``<stem>_composition.csv``,
``<stem>_correlation.csv``, ``<stem>_correlation.png``.

When inputs of different formats in one run share a stem and an output folder
(``Si.epos`` and ``Si.pos``, as IVAS / AP Suite exports arrive), each of their output
names also carries the input's extension: ``Si_epos_summary.json`` and
``Si_pos_summary.json``. Names never depend on the order of the inputs;
:func:`check_not_an_input` refuses an output that would be one of the inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Suffix of the correction's outputs: ``run.epos`` -> ``run_corrected.h5``.
CORRECTED_SUFFIX = "_corrected"

#: Output kind -> name ending.
OUTPUT_ENDINGS = {"h5": f"{CORRECTED_SUFFIX}.h5", "epos": f"{CORRECTED_SUFFIX}.epos", "json": "_summary.json",
                  "png": "_overview.png", "composition_csv": "_composition.csv",
                  "correlation_csv": "_correlation.csv", "correlation_png": "_correlation.png"}


@dataclass(frozen=True)
class InputFile:
    """A file to process and, when it was found in a folder PATH, that folder."""

    path: Path
    root: Path | None = None


def output_folder(item: InputFile, output_dir: Path | None) -> Path:
    """Beside the input, or under ``output_dir`` (mirroring the sub-folders of a folder PATH)."""
    if output_dir is None:
        return item.path.parent
    if item.root is not None:
        return Path(output_dir) / item.path.parent.relative_to(item.root)
    return Path(output_dir)


def output_stem(path: Path, shared: bool) -> str:
    """``run`` for ``run.epos``; ``run_epos`` when another input shares the stem and folder."""
    suffix = path.suffix.lower().lstrip(".")
    return f"{path.stem}_{suffix}" if shared and suffix else path.stem


def output_paths(item: InputFile, output_dir: Path | None = None, *, kinds=("json", "png"),
                 shared_stem: bool = False) -> dict[str, Path]:
    """``{kind: path}`` of the outputs of one input (kinds of :data:`OUTPUT_ENDINGS`)."""
    folder = output_folder(item, output_dir)
    stem = output_stem(item.path, shared_stem)
    return {kind: folder / f"{stem}{OUTPUT_ENDINGS[kind]}" for kind in kinds}


def plan_outputs(items, output_dir: Path | None = None, *, kinds=("json", "png")) -> dict[Path, dict[str, Path]]:
    """The outputs of every input, distinct for same-stem inputs in one folder.

    Returns ``{input path: {kind: output path}}``. Check each input's outputs with
    :func:`check_not_an_input` before writing them.
    """
    items = list(items)
    keys = [(output_folder(item, output_dir).resolve(), item.path.stem) for item in items]
    suffixes: dict[tuple, set] = {}
    for item, key in zip(items, keys):
        suffixes.setdefault(key, set()).add(item.path.suffix.lower())
    # Only a stem shared by different formats takes the extension (it tells them apart);
    # two inputs of one name in one output folder still collide and are reported.
    return {item.path: output_paths(item, output_dir, kinds=kinds, shared_stem=len(suffixes[key]) > 1)
            for item, key in zip(items, keys)}


def check_not_an_input(output, inputs, owner=None) -> None:
    """Raise ``ValueError`` if ``output`` is one of ``inputs`` (same path or same file)."""
    output = Path(output)
    for source in inputs:
        if source is None:
            continue
        source = Path(source)
        same = output.resolve() == source.resolve()
        if not same and output.exists() and source.exists():
            same = os.path.samefile(output, source)
        if same:
            whose = f" (an output of {owner})" if owner is not None and Path(owner) != source else ""
            raise ValueError(f"{output}{whose}: refusing to overwrite the input file {source}; choose another "
                             "output path")
