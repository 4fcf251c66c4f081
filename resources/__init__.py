"""Data files bundled with aptviewer (installed as the package ``aptviewer.resources``).

This folder holds data only: the reflectron mesh presets in ``presets/`` (see the
provenance note ``presets/README.md``). Code finds them through :mod:`aptviewer._resources`,
which works from an installed wheel and from a source checkout alike.
"""
