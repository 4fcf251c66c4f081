"""Build the standalone one-folder aptviewer bundle with PyInstaller and smoke-test it.

Run from a checkout, in an environment where aptviewer is installed (``pip install -e .``)::

    python packaging/build_bundle.py              # -> dist/aptviewer/ (and a smoke test)
    python packaging/build_bundle.py --skip-build # only smoke-test an existing bundle

It installs PyInstaller if it is missing, builds ``packaging/aptviewer.spec`` into
``dist/aptviewer/`` and then checks the bundle in fresh processes, offscreen and with a
throw-away home folder:

1. ``aptviewer --demo --smoke-test`` generates the demo file, opens the window on it and must
   exit 0 after the first complete draw; later starts are timed, alternating with the same
   command run through this Python (``python -m aptviewer``) as a reference;
2. ``aptviewer --batch`` on the demo file must write the summary JSON and the overview PNG
   (the PNG is drawn by a child process of the bundle);
3. a second ``aptviewer FILE`` must hand its file to the running bundled window and exit 0;
4. ``aptviewer --install-desktop --dry-run`` must name the bundle as the program to run.

It prints the bundle size and the start times, and exits non-zero if a check fails. The
same spec builds ``aptviewer.exe`` and ``aptviewer-gui.exe`` on Windows. This is a release
check, not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "aptviewer.spec"
PYINSTALLER = "pyinstaller>=6.10"


def ensure_pyinstaller() -> None:
    if importlib.util.find_spec("PyInstaller") is None:
        print(f"installing {PYINSTALLER} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", PYINSTALLER], check=True)


def build(dist: Path, work: Path) -> float:
    ensure_pyinstaller()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
                    "--distpath", str(dist), "--workpath", str(work), str(SPEC)], check=True, cwd=ROOT)
    return time.perf_counter() - start


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def run(command, env, timeout=300) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return result, time.perf_counter() - start


def smoke_test(bundle: Path, repeats: int) -> list[str]:
    """Run the checks; return the failures (empty: all passed)."""
    exe = bundle / ("aptviewer.exe" if sys.platform == "win32" else "aptviewer")
    failures = []
    with tempfile.TemporaryDirectory(prefix="aptviewer-smoke-") as tmp:
        home = Path(tmp)
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(home), USERPROFILE=str(home),
                   XDG_CACHE_HOME=str(home / "cache"), XDG_CONFIG_HOME=str(home / "config"),
                   XDG_DATA_HOME=str(home / "data"), LOCALAPPDATA=str(home / "local"),
                   APPDATA=str(home / "roaming"))
        env.pop("PYTHONPATH", None)
        times, reference = [], []
        for attempt in range(repeats + 1):
            result, seconds = run([str(exe), "--demo", "--smoke-test"], env)
            label = "first start (generates the demo file)" if attempt == 0 else f"start {attempt}"
            print(f"  {label}: exit {result.returncode} in {seconds:.2f} s; {result.stderr.strip().splitlines()[-1:]}")
            if result.returncode != 0:
                failures.append(f"--demo --smoke-test exited {result.returncode}:\n{result.stderr[-3000:]}")
                break
            if attempt:
                times.append(seconds)
                # The same start through this Python (the pip install), alternated with the
                # bundle's so that both see the same machine load.
                result, seconds = run([sys.executable, "-m", "aptviewer", "--demo", "--smoke-test"], env)
                if result.returncode == 0:
                    reference.append(seconds)
        if times:
            print(f"  start to first complete draw and clean exit: median {statistics.median(times):.2f} s "
                  f"over {len(times)} starts")
        if reference:
            print(f"  the same through python -m aptviewer (reference): median {statistics.median(reference):.2f} s")
        demo = home / ("local" if sys.platform == "win32" else "cache") / "aptviewer" / "demo.epos"
        out = home / "batch"
        result, seconds = run([str(exe), "--batch", str(demo), "--output-dir", str(out), "--quiet"], env)
        print(f"  --batch: exit {result.returncode} in {seconds:.2f} s")
        for name in ("demo_summary.json", "demo_overview.png"):
            if result.returncode != 0 or not (out / name).is_file():
                failures.append(f"--batch did not write {name} (exit {result.returncode}):\n"
                                f"{(result.stdout + result.stderr)[-3000:]}")
        failures += check_hand_over(exe, env, demo, home)
        result, _ = run([str(exe), "--install-desktop", "--dry-run"], env)
        if result.returncode != 0 or str(bundle.resolve()) not in result.stdout:
            failures.append(f"--install-desktop --dry-run does not run the bundle:\n{result.stdout[:1500]}{result.stderr}")
        else:
            print("  --install-desktop --dry-run: names the bundle")
    return failures


def check_hand_over(exe: Path, env: dict, demo: Path, home: Path) -> list[str]:
    """A second start of the bundle hands its file to the running one and exits 0."""
    # Two names that no earlier start has put in the recent-files list.
    first_file, other = home / "first.epos", home / "other.epos"
    for copy in (first_file, other):
        copy.write_bytes(demo.read_bytes())
    settings = home / "config" / "aptviewer" / "aptviewer.ini"

    def recent(name: str, timeout_s: float) -> bool:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if settings.exists() and name in settings.read_text(errors="replace"):
                return True
            time.sleep(0.2)
        return False

    first = subprocess.Popen([str(exe), str(first_file)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        if not recent("first.epos", 120):
            return ["the first bundled window did not open its file"]
        try:
            result, seconds = run([str(exe), str(other)], env, timeout=60)
        except subprocess.TimeoutExpired:
            return ["the second start did not exit within 60 s: it opened a window of its own"]
        print(f"  second start handed its file over: exit {result.returncode} in {seconds:.2f} s")
        if result.returncode != 0 or not recent("other.epos", 60):
            return [f"the hand-over to the running bundle failed (exit {result.returncode}):\n{result.stderr[-2000:]}"]
        return []
    finally:
        first.terminate()
        first.communicate(timeout=60)
        if sys.platform != "win32":
            # The terminated instance leaves its socket file; remove it as the next start would.
            from aptviewer.ui.single_instance import server_name

            Path(tempfile.gettempdir(), server_name(env)).unlink(missing_ok=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller", help="PyInstaller's work folder")
    parser.add_argument("--skip-build", action="store_true", help="smoke-test the existing bundle only")
    parser.add_argument("--repeats", type=int, default=3, help="timed starts after the first (default 3)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    bundle = args.dist / "aptviewer"
    if not args.skip_build:
        seconds = build(args.dist, args.work)
        print(f"built {bundle} in {seconds:.0f} s")
    if not bundle.is_dir():
        print(f"no bundle at {bundle}", file=sys.stderr)
        return 2
    size = folder_size(bundle)
    files = sum(1 for p in bundle.rglob("*") if p.is_file())
    print(f"bundle: {size / 2**20:.0f} MiB in {files} files")
    print("smoke test:")
    failures = smoke_test(bundle, args.repeats)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    print("smoke test passed" if not failures else f"smoke test FAILED ({len(failures)} checks)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
