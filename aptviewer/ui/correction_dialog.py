"""Tools > Reflectron correction...: collect and validate the correction's parameters.

The dialog reads no data and runs nothing: it checks its fields live (OK stays disabled
until they are valid) and hands back a :class:`~aptviewer.ui.jobs.CorrectionParameters`;
the main window runs the correction in its worker.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ..core.lazy import DEFAULT_CHUNK_SIZE
from ..workflows.opening import SUPPORTED_SUFFIXES, is_supported
from .jobs import CorrectionParameters
from .settings import last_correction_preset
from .side_panel import CHUNK_SIZES

H5_SUFFIXES = (".h5", ".hdf5")


def default_output_paths(input_path) -> tuple[Path, Path]:
    """``<stem>_corrected.h5`` and ``<stem>_corrected.epos`` beside the input."""
    path = Path(input_path)
    return path.with_name(f"{path.stem}_corrected.h5"), path.with_name(f"{path.stem}_corrected.epos")


def _builtin_presets() -> dict[str, str]:
    from ..core.reflectron import list_builtin_presets

    return list_builtin_presets()


class _PathField(QWidget):
    """A line edit with a Browse... button."""

    def __init__(self, caption: str, file_filter: str, save: bool = False, parent=None):
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setClearButtonEnabled(True)
        self.button = QPushButton("Browse…")
        self._caption, self._filter, self._save = caption, file_filter, save
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.button)
        self.button.clicked.connect(self._browse)

    def _browse(self) -> None:
        start = self.edit.text() or str(Path.home())
        if self._save:
            path, _ = QFileDialog.getSaveFileName(self, self._caption, start, self._filter)
        else:
            path, _ = QFileDialog.getOpenFileName(self, self._caption, start, self._filter)
        if path:
            self.edit.setText(path)

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text).expanduser() if text else None

    def set_path(self, path) -> None:
        self.edit.setText("" if path is None else str(path))


class CorrectionDialog(QDialog):
    """Choose the input EPOS, the mesh, the outputs and the chunk size.

    Parameters
    ----------
    input_path : path-like, optional
        Pre-filled input (the file shown in the viewer, when it is an EPOS).
    """

    def __init__(self, input_path=None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Reflectron correction")
        self.setMinimumWidth(620)
        self._output_edited = False
        self._epos_edited = False

        self.input = _PathField("Choose the data file to correct",
                                "Atom probe data (" + " ".join(f"*{s}" for s in SUPPORTED_SUFFIXES) + ");;All files (*)")

        self.preset_radio = QRadioButton("Built-in instrument preset:")
        self.preset = QComboBox()
        for key, name in _builtin_presets().items():
            self.preset.addItem(name, key)
        last = self.preset.findData(last_correction_preset())
        if last >= 0:
            self.preset.setCurrentIndex(last)
        self.mesh_radio = QRadioButton("Own mesh (CSV files):")
        self.intersections = _PathField("Mesh intersections CSV", "CSV files (*.csv);;All files (*)")
        self.triangles = _PathField("Mesh triangles CSV", "CSV files (*.csv);;All files (*)")
        self._mesh_choice = QButtonGroup(self)
        self._mesh_choice.addButton(self.preset_radio)
        self._mesh_choice.addButton(self.mesh_radio)
        self.preset_radio.setChecked(True)

        self.output = _PathField("Corrected HDF5 file", "HDF5 files (*.h5 *.hdf5)", save=True)
        self.chunk_size = QComboBox()
        for size in CHUNK_SIZES:
            self.chunk_size.addItem(f"{size:,} rows", size)
        self.chunk_size.setCurrentIndex(CHUNK_SIZES.index(DEFAULT_CHUNK_SIZE))
        self.write_epos = QCheckBox("Also write a corrected EPOS file")
        self.epos_output = _PathField("Corrected EPOS file", "EPOS files (*.epos)", save=True)
        self.epos_note = QLabel("")
        self.epos_note.setWordWrap(True)
        self.epos_note.setStyleSheet("color: #8a6d3b;")

        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Correct")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        mesh_box = QGroupBox("Mesh")
        mesh_layout = QFormLayout(mesh_box)
        mesh_layout.addRow(self.preset_radio, self.preset)
        mesh_layout.addRow(self.mesh_radio)
        mesh_layout.addRow("Intersections:", self.intersections)
        mesh_layout.addRow("Triangles:", self.triangles)

        files_box = QGroupBox("Files")
        files_layout = QFormLayout(files_box)
        files_layout.addRow("Input file:", self.input)
        files_layout.addRow("Output HDF5:", self.output)
        files_layout.addRow("Chunk size:", self.chunk_size)
        files_layout.addRow(self.write_epos)
        files_layout.addRow("Output EPOS:", self.epos_output)
        files_layout.addRow(self.epos_note)

        layout = QVBoxLayout(self)
        layout.addWidget(files_box)
        layout.addWidget(mesh_box)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)

        self.input.edit.textChanged.connect(self._on_input_changed)
        self.output.edit.textEdited.connect(lambda _: setattr(self, "_output_edited", True))
        self.epos_output.edit.textEdited.connect(lambda _: setattr(self, "_epos_edited", True))
        for edit in (self.output.edit, self.intersections.edit, self.triangles.edit, self.epos_output.edit):
            edit.textChanged.connect(self.validate)
        for button in (self.preset_radio, self.mesh_radio, self.write_epos):
            button.toggled.connect(self.validate)
        self.preset.currentIndexChanged.connect(self.validate)

        if input_path is not None:
            self.input.set_path(input_path)
        self.validate()

    # -- live validation ----------------------------------------------------------------

    def _on_input_changed(self, text: str) -> None:
        path = self.input.path()
        if path is not None and path.name:
            h5, epos = default_output_paths(path)
            if not self._output_edited:
                self.output.set_path(h5)
            if not self._epos_edited:
                self.epos_output.set_path(epos)
        self.validate()

    def problems(self) -> list[str]:
        """Everything that keeps the input from being valid (empty when OK may be pressed)."""
        problems = []
        source = self.input.path()
        if source is None:
            problems.append("Choose the data file to correct (EPOS, or any file with detector x/y).")
        elif not source.is_file():
            problems.append(f"The input {source} does not exist.")
        elif not is_supported(source):
            problems.append(f"aptviewer cannot read {source.suffix or 'extension-less'} files; choose one of "
                            f"{', '.join(SUPPORTED_SUFFIXES)} with detector x/y and mass-to-charge columns.")
        if self.preset_radio.isChecked():
            if self.preset.currentData() is None:
                problems.append("Choose an instrument preset.")
        else:
            for name, field in (("intersections", self.intersections), ("triangles", self.triangles)):
                path = field.path()
                if path is None:
                    problems.append(f"Choose the mesh {name} CSV file.")
                elif not path.is_file():
                    problems.append(f"The mesh {name} file {path} does not exist.")
        outputs = [("HDF5 output", self.output.path(), H5_SUFFIXES)]
        if self.write_epos.isChecked():
            outputs.append(("EPOS output", self.epos_output.path(), (".epos",)))
        for name, path, suffixes in outputs:
            if path is None:
                problems.append(f"Choose the {name} file.")
                continue
            if path.suffix.lower() not in suffixes:
                problems.append(f"The {name} must end in {' or '.join(suffixes)}.")
            if not path.parent.is_dir():
                problems.append(f"The folder of the {name} ({path.parent}) does not exist.")
            if source is not None and path.resolve() == source.resolve():
                problems.append(f"The {name} would overwrite the input file.")
        return problems

    def _notes(self) -> list[str]:
        notes = []
        for path in [self.output.path()] + ([self.epos_output.path()] if self.write_epos.isChecked() else []):
            if path is not None and path.is_file():
                notes.append(f"{path.name} exists and will be replaced when the correction completes.")
        return notes

    def validate(self) -> bool:
        """Re-check the fields; enable OK only when they are valid. Returns validity."""
        mesh_own = self.mesh_radio.isChecked()
        self.preset.setEnabled(not mesh_own)
        self.intersections.setEnabled(mesh_own)
        self.triangles.setEnabled(mesh_own)
        self.epos_output.setEnabled(self.write_epos.isChecked())
        # The corrected EPOS is written in the same pass as the HDF5: no note about memory.
        self.epos_note.setText("")
        self.epos_note.setVisible(False)
        problems = self.problems()
        ok = not problems
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(ok)
        if problems:
            self.message.setStyleSheet("color: #b03a2e;")
            self.message.setText("\n".join(problems))
        else:
            self.message.setStyleSheet("color: #8a6d3b;")
            self.message.setText("\n".join(self._notes()))
        self.message.setVisible(bool(self.message.text()))
        return ok

    def accept(self) -> None:
        if self.validate():
            super().accept()

    # -- result -------------------------------------------------------------------------

    def parameters(self) -> CorrectionParameters:
        """The validated parameters (raises ``ValueError`` if the fields are not valid)."""
        problems = self.problems()
        if problems:
            raise ValueError(" ".join(problems))
        own = self.mesh_radio.isChecked()
        return CorrectionParameters(
            input_path=self.input.path(),
            output_h5=self.output.path(),
            preset=None if own else self.preset.currentData(),
            intersections_csv=self.intersections.path() if own else None,
            triangles_csv=self.triangles.path() if own else None,
            chunk_size=int(self.chunk_size.currentData()),
            output_epos=self.epos_output.path() if self.write_epos.isChecked() else None,
        )
