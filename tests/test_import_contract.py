"""The import contract, checked statically with import-linter (as napari does)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    found = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert found, "import-linter is a test dependency: pip install -e '.[test]'"
    return found


def test_core_and_workflows_never_import_qt_or_the_ui():
    done = subprocess.run([_lint_imports()], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "core and workflows never import Qt, pyqtgraph or the UI KEPT" in done.stdout
    assert "the core does not depend on the workflows KEPT" in done.stdout


def test_the_checker_would_catch_a_broken_contract(tmp_path):
    # The same tool on a contract the code breaks on purpose (the UI does import Qt):
    # proves that the test above can fail.
    config = tmp_path / "broken.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["aptviewer"]\ninclude_external_packages = true\n\n'
                      '[[tool.importlinter.contracts]]\nname = "ui without Qt"\ntype = "forbidden"\n'
                      'source_modules = ["aptviewer.ui"]\nforbidden_modules = ["PySide6"]\n')
    done = subprocess.run([_lint_imports(), "--config", str(config)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0 and "ui without Qt BROKEN" in done.stdout
