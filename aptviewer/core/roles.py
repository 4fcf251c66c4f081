"""Column roles: find mass-to-charge, time of flight, voltage... whatever the file format.

EPOS files say ``m/n (Da)`` and ``det_x (mm)``; pyccapt's processed and raw tables say
``mc (Da)`` and ``x_det (cm)``. Diagnostics and the GUI ask for a role and get the column
that plays it (with its unit), or ``None`` when the table has no such column.
"""

from __future__ import annotations

from dataclasses import dataclass

#: role -> candidate column names, in order of preference.
ROLE_CANDIDATES: dict[str, tuple[str, ...]] = {
    "mc": ("mc (Da)", "m/n (Da)"),
    "tof": ("t (ns)", "TOF (ns)"),
    "voltage": ("high_voltage (V)", "HV_DC (V)"),
    "det_x": ("x_det (cm)", "det_x (mm)"),
    "det_y": ("y_det (cm)", "det_y (mm)"),
    "multi": ("multi", "ipp"),
    "delta_p": ("delta_p", "pslep"),
}

#: Human-readable names of the roles, for messages and axis labels.
ROLE_LABELS = {
    "mc": "mass-to-charge",
    "tof": "time of flight",
    "voltage": "DC voltage",
    "det_x": "detector x",
    "det_y": "detector y",
    "multi": "multiplicity",
    "delta_p": "pulses since last event",
}


@dataclass(frozen=True)
class RoleColumn:
    """The column that plays a role, and its unit (``""`` when unitless)."""

    role: str
    name: str
    unit: str

    @property
    def label(self) -> str:
        """An axis label such as ``mass-to-charge (Da)``."""
        return f"{ROLE_LABELS[self.role]} ({self.unit})" if self.unit else ROLE_LABELS[self.role]


def _unit(name: str) -> str:
    if name.endswith(")") and "(" in name:
        return name[name.rindex("(") + 1:-1]
    return ""


def find_role(columns, role: str) -> RoleColumn | None:
    """The column of ``columns`` (any container of names) that plays ``role``, or ``None``."""
    try:
        candidates = ROLE_CANDIDATES[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}; roles are: {', '.join(ROLE_CANDIDATES)}") from None
    names = set(columns)
    for name in candidates:
        if name in names:
            return RoleColumn(role, name, _unit(name))
    return None


def find_roles(columns) -> dict[str, RoleColumn]:
    """Every role the columns provide, as ``{role: RoleColumn}`` (absent roles left out)."""
    found = {}
    for role in ROLE_CANDIDATES:
        column = find_role(columns, role)
        if column is not None:
            found[role] = column
    return found


def require_role(columns, role: str, purpose: str) -> RoleColumn:
    """Like :func:`find_role` but raise a clear ``ValueError`` when the role is missing."""
    column = find_role(columns, role)
    if column is None:
        raise ValueError(f"{purpose} needs a {ROLE_LABELS[role]} column "
                         f"({' or '.join(repr(c) for c in ROLE_CANDIDATES[role])}); the data has: "
                         f"{', '.join(map(str, columns))}")
    return column
