"""Fixtures shared by the whole suite: small generated data files, and test hygiene.

Hypothesis keeps no example database in the checkout (CI must not depend on, or write,
``.hypothesis/``); every test leaves the interpreter's ``gc`` and thread switch interval as
it found them (the window lowers the switch interval and switches automatic ``gc`` off).
"""

from __future__ import annotations

import gc
import os
import sys

# Qt must never need a display in the tests (set before anything imports Qt).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("aptviewer", database=None)
settings.load_profile("aptviewer")

from aptviewer.core.demo import write_demo_epos  # noqa: E402
from aptviewer.core.readers import EPOS_DTYPE  # noqa: E402


@pytest.fixture(scope="session")
def demo_epos(tmp_path_factory):
    """A 30,000-row synthetic EPOS file (read-only for tests: copy it before changing it)."""
    path = tmp_path_factory.mktemp("data") / "demo.epos"
    write_demo_epos(path, 30_000, seed=7)
    return path


@pytest.fixture(scope="session")
def demo_records(demo_epos):
    """The demo file's records, read eagerly with plain NumPy (the reference twin)."""
    return np.fromfile(demo_epos, dtype=EPOS_DTYPE)


@pytest.fixture(autouse=True)
def _interpreter_settings_restored():
    """Put back ``gc`` and ``sys.setswitchinterval`` as they were before the test."""
    enabled, thresholds, interval = gc.isenabled(), gc.get_threshold(), sys.getswitchinterval()
    yield
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(interval)
    (gc.enable if enabled else gc.disable)()


@pytest.fixture
def count_reads(monkeypatch):
    """Rows read through LazyTable.read_rows (the driver's one read path), per column."""
    from aptviewer.core.lazy import LazyTable

    rows: dict[str, int] = {}
    original = LazyTable.read_rows

    def counting(self, names, lo, hi, out=None, **options):
        for name in names:
            rows[name] = rows.get(name, 0) + (hi - lo)
        return original(self, names, lo, hi, out, **options)

    monkeypatch.setattr(LazyTable, "read_rows", counting)
    return rows
