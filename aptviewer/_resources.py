"""The one place that finds aptviewer's bundled data files (presets, icons).

The top-level ``resources/`` folder of the source tree is installed as the package
``aptviewer.resources`` (see ``[tool.setuptools]`` in ``pyproject.toml``), so an installed
wheel and an up-to-date editable install find it through :mod:`importlib.resources`. A plain
source checkout that was never installed, or an editable install made before the mapping
existed, has no such package: then the ``resources/`` folder beside the ``aptviewer``
package is used.

Only the standard library is imported here, so this module can be imported on its own
(the wheel test does) without NumPy or Qt.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.resources.abc is new in Python 3.11
    from importlib.resources.abc import Traversable

#: The package the ``resources/`` folder is installed as.
RESOURCE_PACKAGE = "aptviewer.resources"


def _checkout_folder() -> Path:
    """The ``resources/`` folder of a source checkout (it may not exist)."""
    return Path(__file__).resolve().parent.parent / "resources"


@functools.lru_cache(maxsize=1)
def resources_root() -> Traversable:
    """The root of the bundled resources (a :class:`~importlib.resources.abc.Traversable`).

    Raises
    ------
    FileNotFoundError
        If neither the installed package nor a checkout's ``resources/`` folder exists.
    """
    try:
        return importlib.resources.files(RESOURCE_PACKAGE)
    except ModuleNotFoundError:
        folder = _checkout_folder()
        if folder.is_dir():
            return folder
        raise FileNotFoundError(
            f"aptviewer's bundled resources are missing: no package {RESOURCE_PACKAGE!r} is installed "
            f"and there is no folder {folder}; reinstall aptviewer"
        ) from None


def resource(*parts: str) -> Traversable:
    """The resource at ``parts`` below the root: ``resource("presets", "README.md")`` or
    ``resource("presets/README.md")``."""
    node = resources_root()
    for part in parts:
        for name in str(part).split("/"):
            if name:
                node = node.joinpath(name)
    return node


def read_bytes(*parts: str) -> bytes:
    """The content of a bundled file; ``FileNotFoundError`` names it if it is missing."""
    node = resource(*parts)
    if not node.is_file():
        raise FileNotFoundError(f"bundled resource {'/'.join(parts)} not found in {resources_root()}")
    return node.read_bytes()


def list_files(*parts: str) -> list[str]:
    """Sorted names of the files in a bundled folder (empty if the folder is missing)."""
    folder = resource(*parts)
    if not folder.is_dir():
        return []
    return sorted(child.name for child in folder.iterdir() if child.is_file())
