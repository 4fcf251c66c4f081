"""How the application is started: command line, gui-script, --demo, and a Qt-free --batch."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PySide6.QtWidgets import QApplication

import aptviewer.__main__ as cli


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_the_ui_package_does_not_import_qt():
    result = _run_python("import sys, aptviewer.ui; "
                         "assert not [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))], 'Qt imported'")
    assert result.returncode == 0, result.stderr


def test_batch_mode_never_imports_qt(window_epos):
    result = _run_python(
        "import sys\nfrom aptviewer.__main__ import main\n"
        f"rc = main(['--batch', '--no-plots', '--quiet', {str(window_epos)!r}])\n"
        "qt = [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'aptviewer.ui'))]\n"
        "assert not qt, qt\nsys.exit(rc)\n")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def gui_calls(monkeypatch):
    calls = []
    monkeypatch.setattr("aptviewer.ui.main", lambda paths=(), **options: calls.append(list(paths)) or 0)
    return calls


def test_aptviewer_file_opens_the_window_with_it(gui_calls, window_epos):
    assert cli.main([str(window_epos)]) == 0
    assert gui_calls == [[str(window_epos)]]


def test_the_gui_script_passes_its_arguments(gui_calls, window_epos, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["aptviewer-gui", str(window_epos)])
    assert cli.gui_main() == 0
    assert gui_calls == [[str(window_epos)]]


def test_demo_opens_the_generated_dataset(gui_calls, window_epos, monkeypatch):
    monkeypatch.setattr(cli, "ensure_demo_dataset", lambda: window_epos)
    assert cli.main(["--demo"]) == 0
    assert gui_calls == [[str(window_epos)]]


def test_ui_main_builds_the_window_and_runs_the_loop(qtbot, window_epos, monkeypatch):
    from aptviewer import ui
    from aptviewer.ui.main_window import MainWindow

    shown = []

    def fake_exec(self):
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        shown.extend(windows)
        qtbot.waitUntil(lambda: not windows[0].running_tasks(), timeout=20_000)
        for window in windows:
            window.close()
        return 0

    monkeypatch.setattr(QApplication, "exec", fake_exec)
    assert ui.main([window_epos]) == 0
    assert len(shown) == 1 and shown[0].path == window_epos
    assert QApplication.instance().applicationName() == "aptviewer"
