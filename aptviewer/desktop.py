"""Desktop integration: ``aptviewer --install-desktop`` and ``--uninstall-desktop``.

Per user, without administrator rights, aptviewer registers itself with the desktop so that
double-clicking a data file opens it in the viewer:

- **Windows**: a Start-menu shortcut, and under ``HKEY_CURRENT_USER\\Software\\Classes`` a
  ProgID (icon, open command) listed in "Open with" for every supported extension. It
  becomes the default program only for the atom-probe extensions that no program owns
  yet; ``.h5`` is never taken over.
- **Linux** (XDG): a ``.desktop`` entry, the icon in the hicolor theme and shared-mime-info
  types, under ``$XDG_DATA_HOME`` (``~/.local/share``); the MIME and desktop databases are
  refreshed when their tools are installed.

Everything that is written is first described by one plain data structure, an
:class:`InstallPlan` built by :func:`build_plan` for either system on any system, so the
tests check the Windows entries on Linux too. :func:`install` writes a plan and keeps a
manifest of exactly what it wrote (files, folders it created, registry values and keys it
created, files the refresh tools generated); :func:`uninstall` removes exactly that.

This module never imports Qt; ``winreg`` is imported only on Windows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from xml.sax.saxutils import escape

from . import __version__
from ._resources import read_bytes
from .core.errors import AptViewerError
from .core.writers import atomic_output

logger = logging.getLogger(__name__)

APP_NAME = "aptviewer"
#: The Windows ProgID (``Program.Component.Version``) of aptviewer's data files.
PROG_ID = "aptviewer.APTData.1"
#: The XDG desktop-file id and icon name.
DESKTOP_ID = "aptviewer"
DESCRIPTION = "Viewer for atom probe tomography data"
MANIFEST_VERSION = 1
#: PNG sizes shipped in resources/icons/ (aptviewer-<size>.png).
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)


@dataclass(frozen=True)
class FileType:
    """A file extension aptviewer opens, with its XDG MIME type."""

    extension: str
    mime_type: str
    comment: str
    #: False: only "Open with" (the extension belongs to other programs too, e.g. ``.h5``).
    claim_default: bool = True
    #: The type is defined by shared-mime-info already: aptviewer does not redefine it.
    predefined: bool = False
    #: XDG parent type (text formats are ``text/plain``).
    subclass_of: str | None = None


FILE_TYPES = (
    FileType(".epos", "application/x-apt-epos", "Atom probe EPOS data"),
    FileType(".pos", "application/x-apt-pos", "Atom probe POS data"),
    FileType(".apt", "application/x-apt-cameca", "Atom probe APT data (AP Suite)"),
    FileType(".ato", "application/x-apt-ato", "Atom probe ATO data"),
    FileType(".rrng", "application/x-apt-rrng", "Atom probe range file (RRNG)", subclass_of="text/plain"),
    FileType(".rng", "application/x-apt-rng", "Atom probe range file (RNG)", subclass_of="text/plain"),
    # shared-mime-info calls HDF5 (and HDF4) application/x-hdf; aptviewer only offers itself.
    FileType(".h5", "application/x-hdf", "HDF5 data", claim_default=False, predefined=True),
)
EXTENSIONS = tuple(t.extension for t in FILE_TYPES)


class DesktopIntegrationError(AptViewerError, OSError):
    """The desktop integration cannot be installed or removed here (the message says why)."""


@dataclass(frozen=True)
class FileEntry:
    """A file to write: ``path`` (absolute, in the target system's syntax) and its bytes."""

    path: str
    content: bytes
    #: Text files are shown in full by ``--dry-run``; binary ones by size and SHA-256.
    is_text: bool = True


@dataclass(frozen=True)
class RegistryValue:
    """A string value under ``HKEY_CURRENT_USER\\<key>``; ``name`` "" is the key's default value."""

    key: str
    name: str
    value: str
    #: Written only if neither this user nor the machine has a value there yet (used for
    #: an extension's default program, so that aptviewer never replaces another's).
    only_if_unset: bool = False


@dataclass(frozen=True)
class Shortcut:
    """A Windows shortcut (``.lnk``) at ``path`` that runs ``target arguments``."""

    path: str
    target: str
    arguments: str
    icon: str
    description: str
    working_dir: str = ""


@dataclass(frozen=True)
class InstallPlan:
    """Everything ``--install-desktop`` writes on one system: plain data, built on any OS."""

    system: str                                   # "windows" or "linux"
    command: tuple[str, ...]                      # the program a double-click runs (before the paths)
    files: tuple[FileEntry, ...] = ()
    registry: tuple[RegistryValue, ...] = ()
    shortcuts: tuple[Shortcut, ...] = ()
    #: Commands run after writing and after removing (each only when its program exists).
    refresh: tuple[tuple[str, ...], ...] = ()
    #: Where the record of what was written is kept.
    manifest: str = ""


@dataclass
class InstallRecord:
    """What :func:`install` actually wrote: what :func:`uninstall` removes (the manifest)."""

    system: str
    files: list[str] = field(default_factory=list)
    directories_created: list[str] = field(default_factory=list)
    registry_values: list[list[str]] = field(default_factory=list)    # [key, name]
    registry_keys_created: list[str] = field(default_factory=list)
    shortcuts: list[str] = field(default_factory=list)
    #: Files that the refresh tools created (caches) and that did not exist before.
    generated: list[str] = field(default_factory=list)
    refresh: list[list[str]] = field(default_factory=list)
    version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, path) -> InstallRecord:
        try:
            data = json.loads(text)
            if data.get("version") != MANIFEST_VERSION:
                raise ValueError(f"unknown manifest version {data.get('version')!r}")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise DesktopIntegrationError(f"{path}: not an aptviewer install manifest ({exc})") from exc


# ======================================================================================
# The plan
# ======================================================================================

def current_system() -> str:
    """``"windows"`` or ``"linux"`` (any other POSIX desktop is treated as XDG)."""
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        raise DesktopIntegrationError("--install-desktop supports Windows and Linux (XDG) desktops, not macOS")
    return "linux"


def default_command(system: str | None = None) -> tuple[str, ...]:
    """The command that opens files in the viewer, without a console window on Windows.

    A PyInstaller bundle runs itself (its windowed ``aptviewer-gui.exe`` on Windows); a pip
    install runs the ``aptviewer-gui`` launcher beside this Python; failing that, this
    Python with ``-m aptviewer``.
    """
    system = system or current_system()
    exe = ".exe" if system == "windows" else ""
    if getattr(sys, "frozen", False):
        here = Path(sys.executable).resolve()
        windowed = here.with_name(f"aptviewer-gui{exe}")
        return (str(windowed if windowed.exists() else here),)
    launcher = _installed_script(f"aptviewer-gui{exe}")
    if launcher is not None:
        return (str(launcher),)
    for folder in (sysconfig.get_path("scripts"), Path(sys.executable).parent):
        launcher = Path(folder) / f"aptviewer-gui{exe}"
        if launcher.exists():
            return (str(launcher.resolve()),)
    python = Path(sys.executable)
    if system == "windows" and python.with_name("pythonw.exe").exists():
        python = python.with_name("pythonw.exe")
    return (str(python), "-m", "aptviewer")


def _installed_script(name: str) -> Path | None:
    """The launcher pip wrote for this installation of aptviewer (its RECORD lists it, also
    for ``pip install --user``, whose Scripts folder is not this Python's)."""
    try:
        files = importlib.metadata.distribution("aptviewer").files or ()
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name.lower() == name.lower():
            path = Path(file.locate()).resolve()
            if path.exists():
                return path
    return None


def build_plan(system: str | None = None, *, command=None, env=None, home=None) -> InstallPlan:
    """Describe everything the installation writes for ``system``.

    Parameters
    ----------
    system : {"windows", "linux"}, optional
        The target; default: this machine's.
    command : sequence of str, optional
        The program (and leading arguments) that opens files; default :func:`default_command`.
    env : mapping, optional
        Environment variables to read ``XDG_DATA_HOME``, ``APPDATA``, ``LOCALAPPDATA`` from
        (default ``os.environ``).
    home : path-like, optional
        The user's home folder (default ``env["HOME"]`` / ``USERPROFILE``, then ``Path.home()``).
    """
    system = system or current_system()
    env = os.environ if env is None else env
    command = tuple(str(part) for part in (command or default_command(system)))
    if system == "linux":
        return _linux_plan(command, env, home)
    if system == "windows":
        return _windows_plan(command, env, home)
    raise ValueError(f"unknown system {system!r}: expected 'windows' or 'linux'")


def _home(env, home, variable) -> str:
    if home is not None:
        return str(home)
    return env.get(variable) or str(Path.home())


def xdg_data_home(env=None, home=None) -> PurePosixPath:
    """``$XDG_DATA_HOME``, or ``~/.local/share`` when unset or not absolute (XDG base-dir spec)."""
    env = os.environ if env is None else env
    value = env.get("XDG_DATA_HOME", "")
    if value and PurePosixPath(value).is_absolute():
        return PurePosixPath(value)
    return PurePosixPath(_home(env, home, "HOME")) / ".local" / "share"


def _desktop_quote(argument: str) -> str:
    """Quote one argument of an ``Exec`` key (Desktop Entry Specification, "The Exec key")."""
    if argument and not any(c in argument for c in ' \t\n"\'\\><~|&;$*?#()`='):
        return argument
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in argument)
    return f'"{escaped}"'


def desktop_entry(command) -> str:
    """The text of ``aptviewer.desktop``."""
    exec_line = " ".join(_desktop_quote(part).replace("%", "%%") for part in command) + " %F"
    mime_types = "".join(f"{t.mime_type};" for t in FILE_TYPES)
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        f"Name={APP_NAME}\n"
        "GenericName=Atom Probe Data Viewer\n"
        f"Comment={DESCRIPTION} (EPOS, POS, APT, HDF5)\n"
        f"Exec={exec_line}\n"
        f"Icon={DESKTOP_ID}\n"
        "Terminal=false\n"
        "Categories=Science;Physics;DataVisualization;Qt;\n"
        f"MimeType={mime_types}\n"
        "Keywords=atom probe;APT;EPOS;POS;mass spectrum;tomography;\n"
        "StartupNotify=true\n"
        "StartupWMClass=aptviewer\n"
        f"X-aptviewer-Version={__version__}\n"
    )


def mime_package_xml() -> str:
    """The shared-mime-info package ``aptviewer.xml`` (the types aptviewer defines)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">']
    for t in FILE_TYPES:
        if t.predefined:
            continue
        lines.append(f'  <mime-type type="{t.mime_type}">')
        lines.append(f"    <comment>{escape(t.comment)}</comment>")
        if t.subclass_of:
            lines.append(f'    <sub-class-of type="{t.subclass_of}"/>')
        lines.append(f'    <icon name="{DESKTOP_ID}"/>')
        lines.append(f'    <glob pattern="*{t.extension}"/>')
        lines.append("  </mime-type>")
    lines.append("</mime-info>")
    return "\n".join(lines) + "\n"


def _linux_plan(command, env, home) -> InstallPlan:
    data = xdg_data_home(env, home)
    icons = data / "icons" / "hicolor"
    files = [
        FileEntry(str(data / "applications" / f"{DESKTOP_ID}.desktop"), desktop_entry(command).encode()),
        FileEntry(str(data / "mime" / "packages" / f"{DESKTOP_ID}.xml"), mime_package_xml().encode()),
        FileEntry(str(icons / "scalable" / "apps" / f"{DESKTOP_ID}.svg"), read_bytes("icons", "aptviewer.svg")),
    ]
    for size in ICON_SIZES:
        files.append(FileEntry(str(icons / f"{size}x{size}" / "apps" / f"{DESKTOP_ID}.png"),
                               read_bytes("icons", f"aptviewer-{size}.png"), is_text=False))
    refresh = (("update-mime-database", str(data / "mime")),
               ("update-desktop-database", str(data / "applications")))
    return InstallPlan("linux", command, files=tuple(files), refresh=refresh,
                       manifest=str(data / APP_NAME / "desktop-install.json"))


def windows_open_command(command) -> str:
    """The registry's ``shell\\open\\command``: each part quoted, then ``"%1"``."""
    return " ".join(f'"{part}"' for part in command) + ' "%1"'


def _windows_plan(command, env, home) -> InstallPlan:
    profile = PureWindowsPath(_home(env, home, "USERPROFILE"))
    appdata = PureWindowsPath(env.get("APPDATA") or profile / "AppData" / "Roaming")
    local = PureWindowsPath(env.get("LOCALAPPDATA") or profile / "AppData" / "Local")
    icon = str(local / APP_NAME / "aptviewer.ico")
    open_command = windows_open_command(command)
    classes = "Software\\Classes"
    prog = f"{classes}\\{PROG_ID}"
    values = [
        RegistryValue(prog, "", "Atom probe data"),
        RegistryValue(prog, "FriendlyTypeName", "Atom probe data"),
        RegistryValue(f"{prog}\\DefaultIcon", "", f"{icon},0"),
        RegistryValue(f"{prog}\\shell\\open", "FriendlyAppName", APP_NAME),
        RegistryValue(f"{prog}\\shell\\open\\command", "", open_command),
    ]
    # Explorer names a program in "Open with" after its executable; a launcher of our own
    # gets an Applications entry with a friendly name (never python.exe / pythonw.exe).
    exe_name = PureWindowsPath(command[0]).name
    if exe_name.lower().startswith("aptviewer"):
        app = f"{classes}\\Applications\\{exe_name}"
        values += [
            RegistryValue(app, "FriendlyAppName", APP_NAME),
            RegistryValue(f"{app}\\DefaultIcon", "", f"{icon},0"),
            RegistryValue(f"{app}\\shell\\open\\command", "", open_command),
        ]
        values += [RegistryValue(f"{app}\\SupportedTypes", ext, "") for ext in EXTENSIONS]
    for t in FILE_TYPES:
        values.append(RegistryValue(f"{classes}\\{t.extension}\\OpenWithProgids", PROG_ID, ""))
        if t.claim_default:
            values.append(RegistryValue(f"{classes}\\{t.extension}", "", PROG_ID, only_if_unset=True))
    shortcut = Shortcut(
        path=str(appdata / "Microsoft" / "Windows" / "Start Menu" / "Programs" / f"{APP_NAME}.lnk"),
        target=command[0], arguments=" ".join(f'"{part}"' for part in command[1:]), icon=icon,
        description=DESCRIPTION)
    return InstallPlan("windows", command, files=(FileEntry(icon, read_bytes("icons", "aptviewer.ico"), is_text=False),),
                       registry=tuple(values), shortcuts=(shortcut,),
                       manifest=str(local / APP_NAME / "desktop-install.json"))


def describe_plan(plan: InstallPlan) -> str:
    """The plan as text: exactly what would be written (``--dry-run``)."""
    out = [f"aptviewer desktop integration ({plan.system}); double-click runs: {' '.join(plan.command)}"]
    for entry in plan.files:
        if entry.is_text:
            out.append(f"\nwrite {entry.path}:")
            out.extend(f"    {line}" for line in entry.content.decode().splitlines())
        else:
            digest = hashlib.sha256(entry.content).hexdigest()[:16]
            out.append(f"\nwrite {entry.path} ({len(entry.content)} bytes, sha256 {digest}...)")
    if plan.registry:
        out.append("\nset registry values (REG_SZ) under HKEY_CURRENT_USER:")
        for value in plan.registry:
            condition = "   (only if no program is registered for it yet)" if value.only_if_unset else ""
            out.append(f"    {value.key}  {value.name or '(Default)'} = {value.value or '(empty)'}{condition}")
    for shortcut in plan.shortcuts:
        out.append(f"\ncreate shortcut {shortcut.path} -> {shortcut.target} {shortcut.arguments}".rstrip())
    for command in plan.refresh:
        out.append(f"\nrun (if installed): {' '.join(command)}")
    out.append(f"\nrecord what was written in {plan.manifest}")
    return "\n".join(out) + "\n"


# ======================================================================================
# Install and uninstall
# ======================================================================================

def read_manifest(plan: InstallPlan) -> InstallRecord | None:
    """The record of the current installation, or None if aptviewer is not installed."""
    path = Path(plan.manifest)
    if not path.is_file():
        return None
    return InstallRecord.from_json(path.read_text(encoding="utf-8"), path)


def install(plan: InstallPlan, *, registry=None, shortcut_maker=None) -> InstallRecord:
    """Write ``plan`` (removing a previous installation first) and return what was written.

    ``registry`` and ``shortcut_maker`` default to the Windows registry and shortcut
    writers; tests pass their own.
    """
    if read_manifest(plan) is not None:
        uninstall(plan, registry=registry)
    record = InstallRecord(plan.system, refresh=[list(c) for c in plan.refresh])
    try:
        for entry in plan.files:
            _write_file(Path(entry.path), entry.content, record)
        if plan.registry:
            apply_registry(plan.registry, registry or _windows_registry(), record)
        for shortcut in plan.shortcuts:
            _make_folder(Path(shortcut.path).parent, record)
            (shortcut_maker or make_windows_shortcut)(shortcut)
            record.shortcuts.append(shortcut.path)
        _write_manifest(plan, record)
        record.generated = _refresh(plan.refresh, before=None)
        if record.generated:
            _write_manifest(plan, record)
    except BaseException:
        # Leave nothing half-installed: undo what was written so far.
        _remove(record, registry=registry, plan=plan)
        raise
    _notify_shell(plan)
    return record


def uninstall(plan: InstallPlan, *, registry=None) -> InstallRecord | None:
    """Remove exactly what the recorded installation wrote; None if none is recorded."""
    record = read_manifest(plan)
    if record is None:
        return None
    _remove(record, registry=registry, plan=plan)
    _notify_shell(plan)
    return record


def _remove(record: InstallRecord, *, registry, plan: InstallPlan) -> None:
    for path in record.shortcuts + record.files:
        _unlink(Path(path))
    if record.registry_values or record.registry_keys_created:
        remove_registry(record, registry or _windows_registry())
    manifest = Path(plan.manifest)
    _unlink(manifest)
    _refresh_after_removal(record)
    for folder in sorted(record.directories_created, key=lambda p: len(Path(p).parts), reverse=True):
        try:
            Path(folder).rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            logger.info("kept %s: it holds files that aptviewer did not write", folder)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        logger.info("%s was already gone", path)


def _make_folder(folder: Path, record: InstallRecord) -> None:
    missing = []
    for parent in [folder, *folder.parents]:
        if parent.exists():
            break
        missing.append(parent)
    folder.mkdir(parents=True, exist_ok=True)
    record.directories_created.extend(str(p) for p in reversed(missing) if str(p) not in record.directories_created)


def _write_file(path: Path, content: bytes, record: InstallRecord) -> None:
    _make_folder(path.parent, record)
    with atomic_output(path) as temp:
        Path(temp).write_bytes(content)
    record.files.append(str(path))


def _write_manifest(plan: InstallPlan, record: InstallRecord) -> None:
    path = Path(plan.manifest)
    _make_folder(path.parent, record)
    with atomic_output(path) as temp:
        Path(temp).write_text(record.to_json(), encoding="utf-8")


def _tree(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def _refresh(commands, before) -> list[str]:
    """Run the refresh tools that exist; return the files they created (that were not there)."""
    created: list[str] = []
    for command in commands:
        program = shutil.which(command[0])
        if program is None:
            logger.info("%s is not installed: the desktop picks the change up at its next start", command[0])
            continue
        target = Path(command[-1])
        existing = _tree(target)
        try:
            subprocess.run([program, *command[1:]], check=True, capture_output=True, timeout=120)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            logger.warning("%s failed: %s %s", " ".join(command), exc, detail.decode(errors="replace").strip())
            continue
        created.extend(sorted(_tree(target) - existing))
    return created


def _refresh_after_removal(record: InstallRecord) -> None:
    """Undo what the refresh tools did: delete the caches that the installation created,
    and bring caches that were there before up to date by running the tool again."""
    generated = {Path(p) for p in record.generated}
    for command in record.refresh:
        target = Path(command[-1])
        ours = {p for p in generated if target in p.parents}
        for path in ours:
            _unlink(path)
        for folder in sorted({p.parent for p in ours}, key=lambda p: len(p.parts), reverse=True):
            if folder != target and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        caches_before = [f for f in _tree(target) if not _is_tool_input(target, Path(f))]
        program = shutil.which(command[0])
        if caches_before and program is not None:
            subprocess.run([program, *command[1:]], check=False, capture_output=True, timeout=120)


def _is_tool_input(target: Path, path: Path) -> bool:
    """Whether ``path`` is an input of the refresh tool of ``target`` (not a cache it writes)."""
    if target.name == "mime":
        return path.parent == target / "packages"
    return path.suffix == ".desktop" or path.is_dir()


# ---- Windows -------------------------------------------------------------------------

def apply_registry(values, registry, record: InstallRecord) -> None:
    """Write ``values`` through ``registry`` (see :class:`WindowsRegistry`), recording what is new.

    Which ``only_if_unset`` values to skip is decided before anything is written (writing
    ``.epos\\OpenWithProgids`` creates the ``.epos`` key that such a check looks at).
    """
    skipped = {(v.key, v.name) for v in values if v.only_if_unset and registry.classes_value(v.key, v.name)}
    for value in values:
        if (value.key, value.name) in skipped:
            logger.info("left %s alone: another program owns it", value.key)
            continue
        created = registry.create_key(value.key)
        record.registry_keys_created.extend(k for k in created if k not in record.registry_keys_created)
        registry.set_value(value.key, value.name, value.value)
        record.registry_values.append([value.key, value.name])


def remove_registry(record: InstallRecord, registry) -> None:
    """Delete the values ``record`` lists, then the keys it created that are now empty."""
    for key, name in record.registry_values:
        registry.delete_value(key, name)
    for key in sorted(record.registry_keys_created, key=lambda k: k.count("\\"), reverse=True):
        registry.delete_key_if_empty(key)


class WindowsRegistry:
    """``HKEY_CURRENT_USER`` through :mod:`winreg` (Windows only)."""

    def __init__(self):
        import winreg

        self.winreg = winreg

    def classes_value(self, key: str, name: str):
        """The value at ``key`` (below Software\\Classes) for this user or machine-wide, or None."""
        w = self.winreg
        for hive in (w.HKEY_CURRENT_USER, w.HKEY_LOCAL_MACHINE):
            try:
                with w.OpenKey(hive, key) as handle:
                    value, _ = w.QueryValueEx(handle, name)
            except OSError:
                continue
            if value:
                return value
        return None

    def create_key(self, key: str) -> list[str]:
        """Create ``key`` and its missing parents; return those that were created."""
        w = self.winreg
        created = []
        parts = key.split("\\")
        for depth in range(1, len(parts) + 1):
            partial = "\\".join(parts[:depth])
            try:
                w.OpenKey(w.HKEY_CURRENT_USER, partial).Close()
            except OSError:
                w.CreateKey(w.HKEY_CURRENT_USER, partial).Close()
                created.append(partial)
        return created

    def set_value(self, key: str, name: str, value: str) -> None:
        w = self.winreg
        with w.OpenKey(w.HKEY_CURRENT_USER, key, 0, w.KEY_SET_VALUE) as handle:
            w.SetValueEx(handle, name, 0, w.REG_SZ, value)

    def delete_value(self, key: str, name: str) -> None:
        w = self.winreg
        try:
            with w.OpenKey(w.HKEY_CURRENT_USER, key, 0, w.KEY_SET_VALUE) as handle:
                w.DeleteValue(handle, name)
        except FileNotFoundError:
            logger.info("registry value %s\\%s was already gone", key, name)

    def delete_key_if_empty(self, key: str) -> None:
        w = self.winreg
        try:
            with w.OpenKey(w.HKEY_CURRENT_USER, key) as handle:
                subkeys, values, _ = w.QueryInfoKey(handle)
            if subkeys == 0 and values == 0:
                w.DeleteKey(w.HKEY_CURRENT_USER, key)
        except FileNotFoundError:
            pass


def _windows_registry() -> WindowsRegistry:
    if sys.platform != "win32":
        raise DesktopIntegrationError("the Windows registry can only be written on Windows")
    return WindowsRegistry()


def make_windows_shortcut(shortcut: Shortcut) -> None:
    """Create the ``.lnk`` with the Windows Script Host's shortcut object (part of every Windows).

    pyshortcuts (well kept) was considered: it cuts its target at the first space (so
    ``C:\\Program Files\\...`` breaks) and, in a conda environment, writes a batch runner
    into the environment that the manifest could not track.
    """
    # The Windows Script Host's shortcut object ships with every Windows; values go through
    # environment variables so that no path needs PowerShell quoting.
    script = ("$s = (New-Object -ComObject WScript.Shell).CreateShortcut($env:APV_LNK); "
              "$s.TargetPath = $env:APV_TARGET; $s.Arguments = $env:APV_ARGS; "
              "$s.IconLocation = $env:APV_ICON + ',0'; $s.Description = $env:APV_DESC; "
              "$s.WorkingDirectory = $env:USERPROFILE; $s.Save()")
    env = dict(os.environ, APV_LNK=shortcut.path, APV_TARGET=shortcut.target, APV_ARGS=shortcut.arguments,
               APV_ICON=shortcut.icon, APV_DESC=shortcut.description)
    result = subprocess.run(["powershell", "-NoProfile", "-NonInteractive", "-Command", script],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0 or not Path(shortcut.path).exists():
        raise DesktopIntegrationError(f"{shortcut.path}: could not create the Start-menu shortcut "
                                      f"({result.stderr.strip() or 'powershell failed'})")


def _notify_shell(plan: InstallPlan) -> None:
    """Tell Explorer that file associations changed (Windows only)."""
    if plan.system == "windows" and sys.platform == "win32":
        import ctypes

        SHCNE_ASSOCCHANGED, SHCNF_IDLIST = 0x08000000, 0
        ctypes.windll.shell32.SHChangeNotify(SHCNE_ASSOCCHANGED, SHCNF_IDLIST, None, None)


# ======================================================================================
# Command line
# ======================================================================================

def run_desktop_command(args) -> int:
    """``aptviewer --install-desktop`` / ``--uninstall-desktop`` [``--dry-run``]: the console front end."""
    try:
        plan = build_plan()
        if args.dry_run:
            if args.install_desktop:
                sys.stdout.write(describe_plan(plan))
            else:
                record = read_manifest(plan)
                sys.stdout.write(_describe_removal(record, plan))
            return 0
        if args.install_desktop:
            record = install(plan)
            sys.stdout.write(f"Installed the aptviewer desktop integration ({len(record.files)} files, "
                             f"{len(record.registry_values)} registry values, {len(record.shortcuts)} shortcuts); "
                             f"undo with: aptviewer --uninstall-desktop\n")
        else:
            record = uninstall(plan)
            if record is None:
                sys.stdout.write(f"Nothing to remove: no installation is recorded in {plan.manifest}\n")
            else:
                sys.stdout.write("Removed the aptviewer desktop integration.\n")
        return 0
    except (OSError, subprocess.SubprocessError) as exc:
        sys.stderr.write(f"aptviewer: {exc}\n")
        return 1


def _describe_removal(record: InstallRecord | None, plan: InstallPlan) -> str:
    if record is None:
        return f"Nothing to remove: no installation is recorded in {plan.manifest}\n"
    lines = [f"remove {path}" for path in record.shortcuts + record.files + record.generated]
    lines += [f"delete registry value HKEY_CURRENT_USER\\{key}  {name or '(Default)'}"
              for key, name in record.registry_values]
    lines += [f"delete registry key HKEY_CURRENT_USER\\{key} (if empty)" for key in record.registry_keys_created]
    lines += [f"remove folder {folder} (if empty)" for folder in record.directories_created]
    lines.append(f"remove {plan.manifest}")
    return "\n".join(lines) + "\n"
