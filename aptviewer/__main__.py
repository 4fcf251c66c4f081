"""Command line entry point: ``aptviewer [FILE ...]``, ``aptviewer --batch``, ``aptviewer --demo``.

Arguments are parsed before anything heavy is imported. ``--batch`` runs headless and
never imports Qt; only the GUI path imports :mod:`aptviewer.ui`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEMO_ROWS = 2_000_000
DEMO_VERSION = 2
DEMO_MULTIHIT_FRACTION = 0.35


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aptviewer",
        description="View, convert and batch-process atom probe data (EPOS, POS, AP Suite APT, ATO, pyccapt-raw "
                    "HDF5) with little memory.",
        epilog="Without --batch, the files open in the desktop viewer.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="data files (or, with --batch, folders)")
    parser.add_argument("--version", action="version", version=f"aptviewer {__version__}")
    parser.add_argument("--demo", action="store_true",
                        help="generate a small synthetic EPOS dataset (once) and open it")
    parser.add_argument("--convert", nargs=2, metavar=("SRC", "DST"),
                        help="convert SRC to DST (.epos, .pos or .apt, from DST's extension), streaming; no window")
    parser.add_argument("--new-window", action="store_true",
                        help="open a new window even if aptviewer is already running")
    # Releases: the bundle check starts the window and exits 0 after its first complete draw.
    parser.add_argument("--smoke-test", action="store_true", help=argparse.SUPPRESS)
    desktop = parser.add_argument_group("desktop integration (per user, no administrator rights)")
    desktop.add_argument("--install-desktop", action="store_true",
                         help="add a Start-menu shortcut / .desktop entry, the icon and 'Open with' for data files "
                              "(with --dry-run: print what would be written)")
    desktop.add_argument("--uninstall-desktop", action="store_true",
                         help="remove exactly what --install-desktop wrote")
    batch = parser.add_argument_group("batch mode (headless)")
    batch.add_argument("--batch", action="store_true", help="process the PATHs without a window")
    batch.add_argument("--recursive", action="store_true", help="descend into sub-folders of folder PATHs")
    batch.add_argument("--instrument", metavar="KEY",
                       help="apply the reflectron correction with this built-in preset (see --list-instruments)")
    batch.add_argument("--list-instruments", action="store_true", help="list the built-in reflectron presets")
    batch.add_argument("--output-dir", type=Path, metavar="DIR", help="write outputs here instead of beside each input")
    batch.add_argument("--save-epos", action="store_true",
                       help="also write <stem>_corrected.epos (from the same pass over the input)")
    batch.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    batch.add_argument("--dry-run", action="store_true", help="list what would be done, do nothing")
    batch.add_argument("--no-plots", action="store_true", help="do not write <stem>_overview.png")
    batch.add_argument("--multihit", action="store_true",
                       help="also analyse multi-hit events: a 'multihit' section in the summary JSON, "
                            "<stem>_correlation.csv and (with plots) <stem>_correlation.png")
    batch.add_argument("--chunk-size", type=int, default=None, metavar="N", help="rows per chunk (default 1048576)")
    batch.add_argument("--quiet", action="store_true", help="print only errors and the closing table")
    batch.add_argument("--ranges", metavar="FILE|auto",
                       help="count ions per range (RRNG, RNG or ENV file; 'auto': <stem>.rrng/.rng/.env beside each "
                            "file): adds a composition section to the summary JSON and writes <stem>_composition.csv")
    batch.add_argument("--background", action="store_true",
                       help="with --ranges: fit the A/sqrt(m) background and report corrected compositions too")
    binning = parser.add_argument_group("overview binning (batch summaries and PNGs)")
    binning.add_argument("--mass-range", type=float, nargs=2, metavar=("LO", "HI"), help="mass spectrum range, Da "
                         "(default 0 100)")
    binning.add_argument("--mass-bin", type=float, metavar="DA", help="mass spectrum bin width, Da (default 0.1)")
    binning.add_argument("--tof-range", type=float, nargs=2, metavar=("LO", "HI"), help="TOF spectrum range, ns "
                         "(default 0 5000)")
    binning.add_argument("--tof-bin", type=float, metavar="NS", help="TOF spectrum bin width, ns (default 1)")
    binning.add_argument("--detector-bins", type=int, metavar="N", help="hit map bins per axis (default 256)")
    cluster = parser.add_argument_group("batch on a Dask cluster (needs aptviewer[cluster])")
    cluster.add_argument("--workers", type=int, metavar="N",
                         help="run the batch on a local Dask cluster of N worker processes")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="run the batch on an existing Dask cluster (e.g. tcp://head-node:8786)")
    return parser


def demo_path() -> Path:
    """Where the demo dataset lives: the user's cache folder."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    # The name changes with what the demo holds, so an older cached demo is not reused.
    return base / "aptviewer" / f"demo-{DEMO_VERSION}.epos"


def ensure_demo_dataset() -> Path:
    """Create the demo EPOS and its range file if they are not there yet; return the EPOS's path."""
    from .core.demo import write_demo_epos, write_demo_rrng

    path = demo_path()
    expected = DEMO_ROWS * 44
    if not path.exists() or path.stat().st_size != expected:
        # A third of the ions in multi-hit events (2-5 ions, with a dissociating molecular
        # ion), so that the Multi-hit tab shows a real correlation histogram.
        write_demo_epos(path, DEMO_ROWS, multihit_fraction=DEMO_MULTIHIT_FRACTION)
    ranges = path.with_suffix(".rrng")  # the window loads it with the data (a sibling range file)
    if not ranges.exists():
        write_demo_rrng(ranges)
    return path


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.chunk_size is not None and args.chunk_size < 1:
        parser.error("--chunk-size must be a positive number of rows")
    if args.install_desktop or args.uninstall_desktop:
        if args.install_desktop and args.uninstall_desktop:
            parser.error("choose one of --install-desktop and --uninstall-desktop")
        from .desktop import run_desktop_command

        return run_desktop_command(args)
    if args.convert:
        from .convert_cli import run_convert

        return run_convert(args, parser)
    if args.batch or args.list_instruments:
        from .batch import run_batch

        return run_batch(args, parser)
    paths = list(args.paths)
    if args.demo:
        paths.insert(0, str(ensure_demo_dataset()))
    return _run_gui(paths, new_window=args.new_window, smoke_test=args.smoke_test)


def _run_gui(paths, new_window=False, smoke_test=False) -> int:
    from .ui import main as gui_main

    return gui_main(paths, new_window=new_window, smoke_test=smoke_test)


def gui_main() -> int:
    """Entry point of the ``aptviewer-gui`` gui-script (no console window on Windows)."""
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
