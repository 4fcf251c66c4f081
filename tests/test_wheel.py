"""The bundled presets ship in the wheel and are found from a wheel and an editable install.

These tests build the project from a copy of the source tree and install it, without its
dependencies, into fresh virtual environments: ``aptviewer._resources`` needs only the
standard library, so it can be imported there on its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from aptviewer.core.reflectron import BUILTIN_PRESETS

REPO = Path(__file__).resolve().parent.parent
PRESET_FILES = sorted(f"{p.file_stem}_{kind}.csv" for p in BUILTIN_PRESETS.values()
                      for kind in ("intersections", "triangles", "reference"))

# Run inside the installed environment: where the resources are found, and what is there.
PROBE = """
import importlib.util, json, sys
import aptviewer._resources as r
root = r.resources_root()
spec = importlib.util.find_spec("aptviewer.resources")
print(json.dumps({
    "root": str(root),
    "package": None if spec is None else list(spec.submodule_search_locations),
    "presets": r.list_files("presets"),
    "readme": r.read_bytes("presets", "README.md").decode(),
    "sizes": {name: len(r.read_bytes("presets", name)) for name in r.list_files("presets")},
    "numpy_loaded": "numpy" in sys.modules,
}))
"""


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(*argv, cwd) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=_clean_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory) -> Path:
    """The files a build reads, copied so that building never touches the work tree."""
    target = tmp_path_factory.mktemp("src") / "aptviewer-src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("aptviewer", "resources"):
        shutil.copytree(REPO / name, target / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, target / name)
    return target


@pytest.fixture(scope="module")
def wheel(source_copy, tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, source_copy, cwd=dist)
    (wheel_path,) = dist.glob("aptviewer-*.whl")
    return wheel_path


def _venv(folder: Path) -> Path:
    _run(sys.executable, "-m", "venv", "--without-pip", folder, cwd=folder.parent)
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _probe(python: Path, cwd: Path) -> dict:
    return json.loads(_run(python, "-c", PROBE, cwd=cwd).strip().splitlines()[-1])


@pytest.mark.slow
def test_the_wheel_holds_the_presets_and_every_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for file_name in PRESET_FILES + ["README.md"]:
        assert f"aptviewer/resources/presets/{file_name}" in names
    assert "aptviewer/resources/__init__.py" in names
    assert "aptviewer/_resources.py" in names
    # pyproject.toml lists the packages by hand: a new sub-package must be added there.
    for init in (REPO / "aptviewer").rglob("__init__.py"):
        relative = init.relative_to(REPO).as_posix()
        assert relative in names, f"{relative} is missing from the wheel: add its package to pyproject.toml"


@pytest.mark.slow
def test_an_installed_wheel_finds_the_presets(wheel, tmp_path):
    python = _venv(tmp_path / "venv")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    found = _probe(python, cwd=tmp_path)
    root = Path(found["root"])
    assert root.is_relative_to(tmp_path / "venv")  # the installed package, not a source checkout
    assert found["package"] == [str(root)]
    assert found["presets"] == sorted(PRESET_FILES + ["README.md"])
    assert "GPL-3.0" in found["readme"] and "PyCCAPT" in found["readme"]
    for name, size in found["sizes"].items():
        assert size == (REPO / "resources" / "presets" / name).stat().st_size
    assert not found["numpy_loaded"]


@pytest.mark.slow
def test_an_editable_install_finds_the_presets_through_the_package(source_copy, tmp_path):
    python = _venv(tmp_path / "venv")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-e", source_copy, cwd=tmp_path)
    found = _probe(python, cwd=tmp_path)
    assert found["package"] == [str(source_copy / "resources")]  # mapped, not the fallback
    assert Path(found["root"]) == source_copy / "resources"
    assert found["presets"] == sorted(PRESET_FILES + ["README.md"])


def test_a_source_checkout_falls_back_to_the_resources_folder(tmp_path):
    # Import aptviewer straight from the work tree, with site-packages (and so any
    # installed or editable aptviewer) switched off.
    code = "import sys; sys.path.insert(0, sys.argv[1])\n" + PROBE
    found = json.loads(_run(sys.executable, "-S", "-c", code, REPO, cwd=tmp_path).strip().splitlines()[-1])
    assert found["package"] is None
    assert Path(found["root"]) == REPO / "resources"
    assert set(PRESET_FILES) <= set(found["presets"])
