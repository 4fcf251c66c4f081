"""Desktop integration: the install plan as data (Windows and Linux, on any OS), install and
uninstall into a temporary XDG folder, ``--dry-run``, and the bundled icon files."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path, PureWindowsPath

import pytest

from aptviewer import desktop
from aptviewer._resources import read_bytes
from aptviewer.desktop import (
    EXTENSIONS,
    PROG_ID,
    InstallRecord,
    apply_registry,
    build_plan,
    desktop_entry,
    install,
    remove_registry,
    uninstall,
)

WIN_EXE = r"C:\Users\Ada Lovelace\envs\apt\Scripts\aptviewer-gui.exe"
WIN_ENV = {"APPDATA": r"C:\Users\Ada Lovelace\AppData\Roaming",
           "LOCALAPPDATA": r"C:\Users\Ada Lovelace\AppData\Local",
           "USERPROFILE": r"C:\Users\Ada Lovelace"}
ALL_EXTENSIONS = {".epos", ".pos", ".apt", ".ato", ".rrng", ".rng", ".h5"}
MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    """No test here may touch the real home folder or the user's XDG data."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return home


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file (with its content hash) and folder below ``folder``."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _registry(plan) -> dict[tuple[str, str], str]:
    return {(value.key, value.name): value.value for value in plan.registry}


# ---- the plan as data: Windows ---------------------------------------------------------

def test_the_windows_plan_registers_a_progid_with_icon_and_open_command():
    plan = build_plan("windows", command=[WIN_EXE], env=WIN_ENV)
    values = _registry(plan)
    prog = f"Software\\Classes\\{PROG_ID}"
    assert values[(f"{prog}\\shell\\open\\command", "")] == f'"{WIN_EXE}" "%1"'
    icon = r"C:\Users\Ada Lovelace\AppData\Local\aptviewer\aptviewer.ico"
    assert values[(f"{prog}\\DefaultIcon", "")] == f"{icon},0"
    assert values[(prog, "FriendlyTypeName")] == "Atom probe data"
    # The icon it points at is written by the same plan, with the bundled .ico's bytes.
    files = {entry.path: entry.content for entry in plan.files}
    assert files == {icon: read_bytes("icons", "aptviewer.ico")}
    # Per user only: everything below HKEY_CURRENT_USER\Software\Classes.
    assert all(value.key.startswith("Software\\Classes\\") for value in plan.registry)
    assert plan.manifest == r"C:\Users\Ada Lovelace\AppData\Local\aptviewer\desktop-install.json"


def test_every_format_gets_open_with_but_h5_is_never_taken_over():
    plan = build_plan("windows", command=[WIN_EXE], env=WIN_ENV)
    assert set(EXTENSIONS) == ALL_EXTENSIONS
    for ext in ALL_EXTENSIONS:
        assert _registry(plan)[(f"Software\\Classes\\{ext}\\OpenWithProgids", PROG_ID)] == ""
    defaults = {value.key.rsplit("\\", 1)[1]: value for value in plan.registry
                if value.name == "" and value.key.count("\\") == 2 and value.key.rsplit("\\", 1)[1].startswith(".")}
    assert set(defaults) == ALL_EXTENSIONS - {".h5"}
    # Where aptviewer would become the default program, it only does so if nobody owns the extension.
    assert all(value.value == PROG_ID and value.only_if_unset for value in defaults.values())


def test_the_windows_plan_adds_a_start_menu_shortcut_and_an_applications_entry():
    plan = build_plan("windows", command=[WIN_EXE], env=WIN_ENV)
    (shortcut,) = plan.shortcuts
    assert PureWindowsPath(shortcut.path) == PureWindowsPath(
        WIN_ENV["APPDATA"], "Microsoft", "Windows", "Start Menu", "Programs", "aptviewer.lnk")
    assert (shortcut.target, shortcut.arguments) == (WIN_EXE, "")
    assert shortcut.icon.endswith(r"\aptviewer\aptviewer.ico")
    app = "Software\\Classes\\Applications\\aptviewer-gui.exe"
    assert _registry(plan)[(app, "FriendlyAppName")] == "aptviewer"
    assert {name for key, name in _registry(plan) if key == f"{app}\\SupportedTypes"} == ALL_EXTENSIONS


def test_a_python_launcher_gets_no_applications_entry_in_its_name():
    pythonw = r"C:\Python311\pythonw.exe"
    plan = build_plan("windows", command=[pythonw, "-m", "aptviewer"], env=WIN_ENV)
    assert not [v for v in plan.registry if "\\Applications\\" in v.key]
    values = _registry(plan)
    assert values[(f"Software\\Classes\\{PROG_ID}\\shell\\open\\command", "")] == \
        f'"{pythonw}" "-m" "aptviewer" "%1"'
    assert plan.shortcuts[0].arguments == '"-m" "aptviewer"'


def test_the_windows_folders_default_to_the_profile():
    plan = build_plan("windows", command=[WIN_EXE], env={"USERPROFILE": r"D:\Profiles\bob"})
    assert plan.shortcuts[0].path.startswith(r"D:\Profiles\bob\AppData\Roaming\Microsoft\Windows\Start Menu")
    assert plan.manifest.startswith(r"D:\Profiles\bob\AppData\Local\aptviewer")


class FakeRegistry:
    """HKEY_CURRENT_USER as a dict of keys -> {name: value}, with a merged-view lookup."""

    def __init__(self, keys, machine_classes=None):
        self.keys = {k: dict(v) for k, v in keys.items()}
        self.machine_classes = machine_classes or {}

    def classes_value(self, key, name):
        value = self.keys.get(key, {}).get(name)
        return value if value is not None else self.machine_classes.get((key, name))

    def create_key(self, key):
        parts, created = key.split("\\"), []
        for depth in range(1, len(parts) + 1):
            partial = "\\".join(parts[:depth])
            if partial not in self.keys:
                self.keys[partial] = {}
                created.append(partial)
        return created

    def set_value(self, key, name, value):
        self.keys[key][name] = value

    def delete_value(self, key, name):
        self.keys.get(key, {}).pop(name, None)

    def delete_key_if_empty(self, key):
        has_children = any(k.startswith(key + "\\") for k in self.keys)
        if key in self.keys and not self.keys[key] and not has_children:
            del self.keys[key]


def test_registry_install_respects_other_owners_and_uninstall_restores_it_exactly():
    before = {"Software": {}, "Software\\Classes": {}, "Software\\Classes\\.h5": {"": "h5file"},
              "Software\\Classes\\.rrng": {"": "IVAS.RangeFile"}}
    registry = FakeRegistry(before, machine_classes={("Software\\Classes\\.apt", ""): "APSuite.APT"})
    plan = build_plan("windows", command=[WIN_EXE], env=WIN_ENV)
    record = InstallRecord("windows")
    apply_registry(plan.registry, registry, record)
    assert registry.keys["Software\\Classes\\.epos"][""] == PROG_ID             # nobody owned it
    assert registry.keys["Software\\Classes\\.rrng"][""] == "IVAS.RangeFile"    # the user's choice stays
    assert "" not in registry.keys.get("Software\\Classes\\.apt", {})          # a machine-wide owner stays
    assert registry.keys["Software\\Classes\\.h5"] == {"": "h5file"} or \
        registry.keys["Software\\Classes\\.h5"][""] == "h5file"
    assert registry.keys["Software\\Classes\\.rrng\\OpenWithProgids"] == {PROG_ID: ""}
    assert "Software\\Classes" not in record.registry_keys_created
    remove_registry(record, registry)
    assert registry.keys == before


# ---- the plan as data: Linux ------------------------------------------------------------

def test_the_linux_plan_writes_under_xdg_data_home(tmp_path):
    data = tmp_path / "xdg"
    plan = build_plan("linux", command=["/opt/apt/bin/aptviewer-gui"], env={"XDG_DATA_HOME": str(data)})
    paths = {Path(entry.path).relative_to(data).as_posix() for entry in plan.files}
    assert paths == {"applications/aptviewer.desktop", "mime/packages/aptviewer.xml",
                     "icons/hicolor/scalable/apps/aptviewer.svg",
                     *(f"icons/hicolor/{s}x{s}/apps/aptviewer.png" for s in (16, 24, 32, 48, 64, 128, 256))}
    assert plan.manifest == str(data / "aptviewer" / "desktop-install.json")
    assert plan.registry == () and plan.shortcuts == ()
    assert [c[0] for c in plan.refresh] == ["update-mime-database", "update-desktop-database"]


def test_xdg_data_home_defaults_to_local_share(tmp_path):
    home = tmp_path / "someone"
    for env in ({}, {"XDG_DATA_HOME": ""}, {"XDG_DATA_HOME": "relative/is/invalid"}):
        plan = build_plan("linux", command=["aptviewer-gui"], env=env, home=home)
        assert Path(plan.files[0].path) == home / ".local" / "share" / "applications" / "aptviewer.desktop"


def test_the_desktop_entry_opens_files_and_lists_every_type():
    text = desktop_entry(["/opt/apt/bin/aptviewer-gui"])
    lines = dict(line.split("=", 1) for line in text.splitlines()[1:])
    assert text.startswith("[Desktop Entry]\n")
    assert lines["Exec"] == "/opt/apt/bin/aptviewer-gui %F"
    assert lines["Icon"] == "aptviewer" and lines["Terminal"] == "false"
    mime_types = set(filter(None, lines["MimeType"].split(";")))
    assert mime_types == {t.mime_type for t in desktop.FILE_TYPES}
    assert "application/x-hdf" in mime_types    # HDF5: offered, but the type is not redefined


def test_exec_quotes_paths_with_spaces_and_escapes_percent():
    text = desktop_entry(["/home/a b/venv/bin/python", "-m", "aptviewer", "100%"])
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    assert exec_line == 'Exec="/home/a b/venv/bin/python" -m aptviewer 100%% %F'


def test_the_mime_package_defines_one_glob_per_apt_format():
    root = ET.fromstring(desktop.mime_package_xml())
    globs = {}
    for mime_type in root.findall(f"{MIME_NS}mime-type"):
        for glob in mime_type.findall(f"{MIME_NS}glob"):
            globs[glob.get("pattern")] = mime_type.get("type")
        assert mime_type.find(f"{MIME_NS}icon").get("name") == "aptviewer"
    assert set(globs) == {f"*{ext}" for ext in ALL_EXTENSIONS - {".h5"}}
    assert globs["*.epos"] == "application/x-apt-epos"
    text_types = {m.get("type") for m in root if m.find(f"{MIME_NS}sub-class-of") is not None}
    assert text_types == {"application/x-apt-rrng", "application/x-apt-rng"}


def test_dry_run_text_shows_exactly_what_is_written(tmp_path):
    plan = build_plan("linux", command=["/opt/apt/bin/aptviewer-gui"], env={"XDG_DATA_HOME": str(tmp_path)})
    text = desktop.describe_plan(plan)
    for entry in plan.files:
        assert f"write {entry.path}" in text
    assert "\n".join(f"    {line}" for line in desktop_entry(["/opt/apt/bin/aptviewer-gui"]).splitlines()) in text
    windows = desktop.describe_plan(build_plan("windows", command=[WIN_EXE], env=WIN_ENV))
    assert f'{PROG_ID}\\shell\\open\\command  (Default) = "{WIN_EXE}" "%1"\n' in windows
    assert f"Software\\Classes\\.h5\\OpenWithProgids  {PROG_ID} = (empty)\n" in windows
    assert "create shortcut C:\\Users\\Ada Lovelace\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu" in windows


# ---- install and uninstall (Linux, a temporary XDG folder) --------------------------------

@pytest.fixture
def xdg(tmp_path):
    """A data folder that already holds another program's files (which must survive)."""
    data = tmp_path / "data"
    (data / "applications").mkdir(parents=True)
    (data / "applications" / "other.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Other\nExec=other %f\nMimeType=text/plain;\n")
    (data / "icons" / "hicolor" / "48x48" / "apps").mkdir(parents=True)
    (data / "icons" / "hicolor" / "48x48" / "apps" / "other.png").write_bytes(b"not ours")
    return data


def _plan(data):
    return build_plan("linux", command=[sys.executable, "-m", "aptviewer"], env={"XDG_DATA_HOME": str(data)})


def test_install_writes_the_plan_and_uninstall_leaves_the_folder_as_before(xdg):
    before = _snapshot(xdg)
    plan = _plan(xdg)
    record = install(plan)
    for entry in plan.files:
        assert Path(entry.path).read_bytes() == entry.content
    assert sorted(record.files) == sorted(entry.path for entry in plan.files)
    assert desktop.read_manifest(plan) == record
    if shutil.which("update-mime-database"):
        # The MIME database now maps the APT extensions to aptviewer's types.
        globs = (xdg / "mime" / "globs2").read_text()
        assert "application/x-apt-epos:*.epos" in globs
        assert str(xdg / "mime" / "mime.cache") in record.generated
    # The refresh tools' caches are recorded, and only files below their own folders.
    assert all(Path(path).parent in (xdg / "applications", xdg / "mime") or xdg / "mime" in Path(path).parents
               for path in record.generated)
    if shutil.which("desktop-file-validate"):
        result = subprocess.run(["desktop-file-validate", str(xdg / "applications" / "aptviewer.desktop")],
                                capture_output=True, text=True)
        assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    assert uninstall(plan) == record
    assert _snapshot(xdg) == before


def test_install_into_an_empty_home_and_uninstall_removes_every_folder_it_made(tmp_path):
    data = tmp_path / "fresh" / "share"
    plan = _plan(data)
    install(plan)
    assert (data / "applications" / "aptviewer.desktop").is_file()
    uninstall(plan)
    assert not (tmp_path / "fresh").exists()


def test_reinstalling_replaces_the_previous_installation(xdg):
    before = _snapshot(xdg)
    plan = _plan(xdg)
    install(plan)
    second = install(plan)
    assert sorted(second.files) == sorted(entry.path for entry in plan.files)
    uninstall(plan)
    assert _snapshot(xdg) == before


def test_uninstall_keeps_files_it_did_not_write(xdg):
    plan = _plan(xdg)
    install(plan)
    stranger = xdg / "icons" / "hicolor" / "16x16" / "apps" / "later.png"   # a folder aptviewer created
    stranger.write_bytes(b"another program's icon")
    uninstall(plan)
    assert stranger.read_bytes() == b"another program's icon"
    assert not (xdg / "icons" / "hicolor" / "16x16" / "apps" / "aptviewer.png").exists()


def test_uninstall_without_an_installation_does_nothing(xdg):
    before = _snapshot(xdg)
    assert uninstall(_plan(xdg)) is None
    assert _snapshot(xdg) == before


def test_a_damaged_manifest_is_a_typed_error(xdg):
    plan = _plan(xdg)
    Path(plan.manifest).parent.mkdir(parents=True)
    Path(plan.manifest).write_text("{not json")
    with pytest.raises(desktop.DesktopIntegrationError, match="desktop-install.json"):
        uninstall(plan)


# ---- the command line --------------------------------------------------------------------

def _cli(*args, tmp_path):
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "data"),
               XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "aptviewer", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_install_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    before = _snapshot(tmp_path)
    result = _cli("--install-desktop", "--dry-run", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _snapshot(tmp_path) == before
    data = tmp_path / "data"
    assert f"write {data / 'applications' / 'aptviewer.desktop'}:" in result.stdout
    assert f"write {data / 'icons' / 'hicolor' / '256x256' / 'apps' / 'aptviewer.png'} (" in result.stdout
    assert "    MimeType=application/x-apt-epos;" in result.stdout


def test_install_and_uninstall_from_the_command_line(tmp_path):
    result = _cli("--install-desktop", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    entry = tmp_path / "data" / "applications" / "aptviewer.desktop"
    assert entry.is_file() and "aptviewer" in entry.read_text()
    dry = _cli("--uninstall-desktop", "--dry-run", tmp_path=tmp_path)
    assert f"remove {entry}" in dry.stdout and entry.is_file()
    result = _cli("--uninstall-desktop", tmp_path=tmp_path)
    assert result.returncode == 0 and "Removed" in result.stdout, result.stderr
    assert not (tmp_path / "data").exists()
    again = _cli("--uninstall-desktop", tmp_path=tmp_path)
    assert again.returncode == 0 and "Nothing to remove" in again.stdout


def test_install_and_uninstall_together_is_a_usage_error(tmp_path):
    result = _cli("--install-desktop", "--uninstall-desktop", tmp_path=tmp_path)
    assert result.returncode == 2 and "choose one" in result.stderr


# ---- the icon ----------------------------------------------------------------------------

def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_icon_is_shipped_as_svg_pngs_and_a_multi_size_ico():
    ET.fromstring(read_bytes("icons", "aptviewer.svg"))      # well-formed SVG
    for size in desktop.ICON_SIZES:
        assert _png_size(read_bytes("icons", f"aptviewer-{size}.png")) == (size, size)
    ico = read_bytes("icons", "aptviewer.ico")
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind) == (0, 1)
    sizes = set()
    for i in range(count):
        width, height = ico[6 + 16 * i], ico[7 + 16 * i]
        sizes.add((width or 256, height or 256))
    assert {16, 32, 48, 256} <= {w for w, h in sizes if w == h}


# ---- the winreg calls, against an in-memory stand-in of the winreg module ------------------

class _FakeWinreg:
    """The few winreg functions aptviewer calls, over a dict: {(hive, key_lower): {name: value}}."""

    HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE = "HKCU", "HKLM"
    KEY_SET_VALUE, REG_SZ = 2, 1

    class Handle:
        def __init__(self, hive, key):
            self.hive, self.key = hive, key

        def Close(self):  # noqa: N802 - winreg's name
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def __init__(self, keys):
        self.keys = {(hive, key.lower()): dict(values) for (hive, key), values in keys.items()}

    def _lookup(self, hive, key):
        if (hive, key.lower()) not in self.keys:
            raise FileNotFoundError(key)
        return self.keys[(hive, key.lower())]

    def OpenKey(self, hive, key, reserved=0, access=0):  # noqa: N802
        self._lookup(hive, key)
        return self.Handle(hive, key)

    def CreateKey(self, hive, key):  # noqa: N802
        parts = key.split("\\")
        for depth in range(1, len(parts) + 1):
            self.keys.setdefault((hive, "\\".join(parts[:depth]).lower()), {})
        return self.Handle(hive, key)

    def QueryValueEx(self, handle, name):  # noqa: N802
        values = self._lookup(handle.hive, handle.key)
        if name not in values:
            raise FileNotFoundError(name)
        return values[name], self.REG_SZ

    def SetValueEx(self, handle, name, reserved, kind, value):  # noqa: N802
        assert kind == self.REG_SZ and isinstance(value, str)
        self._lookup(handle.hive, handle.key)[name] = value

    def DeleteValue(self, handle, name):  # noqa: N802
        values = self._lookup(handle.hive, handle.key)
        if name not in values:
            raise FileNotFoundError(name)
        del values[name]

    def _children(self, hive, key):
        prefix = key.lower() + "\\"
        return [k for h, k in self.keys if h == hive and k.startswith(prefix)]

    def QueryInfoKey(self, handle):  # noqa: N802
        values = self._lookup(handle.hive, handle.key)
        direct = [k for k in self._children(handle.hive, handle.key) if "\\" not in k[len(handle.key) + 1:]]
        return len(direct), len(values), 0

    def DeleteKey(self, hive, key):  # noqa: N802
        if self._children(hive, key):
            raise PermissionError(f"{key} has subkeys")
        del self.keys[(hive, key.lower())]


def test_the_winreg_writer_installs_and_removes_exactly_its_values(monkeypatch):
    before = {("HKCU", "Software"): {}, ("HKCU", "Software\\Classes"): {},
              ("HKCU", "Software\\Classes\\.h5"): {"": "h5file"},
              ("HKLM", "Software\\Classes\\.apt"): {"": "APSuite.APT"}}
    fake = _FakeWinreg(before)
    monkeypatch.setitem(sys.modules, "winreg", fake)
    registry = desktop.WindowsRegistry()
    plan = build_plan("windows", command=[WIN_EXE], env=WIN_ENV)
    record = InstallRecord("windows")
    apply_registry(plan.registry, registry, record)
    classes = fake.keys
    assert classes[("HKCU", f"software\\classes\\{PROG_ID}\\shell\\open\\command".lower())] == \
        {"": f'"{WIN_EXE}" "%1"'}
    assert classes[("HKCU", "software\\classes\\.epos")] == {"": PROG_ID}
    assert ("HKCU", "software\\classes\\.apt") not in classes or "" not in classes[("HKCU", "software\\classes\\.apt")]
    assert classes[("HKCU", "software\\classes\\.h5")] == {"": "h5file"}
    assert classes[("HKCU", "software\\classes\\.h5\\openwithprogids")] == {PROG_ID: ""}
    remove_registry(record, registry)
    assert fake.keys == _FakeWinreg(before).keys


def test_the_desktop_commands_never_import_qt(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"))
    code = ("import sys\nfrom aptviewer.__main__ import main\n"
            "rc = main(['--install-desktop', '--dry-run'])\n"
            "assert not [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))], 'Qt imported'\n"
            "sys.exit(rc)\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_bundle_runs_its_windowed_sibling(tmp_path, monkeypatch):
    bundle = tmp_path / "aptviewer"
    bundle.mkdir()
    (bundle / "aptviewer.exe").write_bytes(b"")
    (bundle / "aptviewer-gui.exe").write_bytes(b"")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(bundle / "aptviewer.exe"))
    assert desktop.default_command("windows") == (str((bundle / "aptviewer-gui.exe").resolve()),)
    assert desktop.default_command("linux") == (str((bundle / "aptviewer.exe").resolve()),)


def test_a_pip_install_runs_the_gui_launcher():
    command = desktop.default_command("linux")
    assert Path(command[0]).name == "aptviewer-gui" and Path(command[0]).is_file(), command


def test_macos_is_refused_with_a_typed_error(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(desktop.DesktopIntegrationError, match="macOS"):
        build_plan()
