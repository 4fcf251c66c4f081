"""Fixtures shared by the whole suite: small generated data files."""

from __future__ import annotations

import os

# Qt must never need a display in the tests (set before anything imports Qt).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

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
