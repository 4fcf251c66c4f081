"""The Qt-free core of aptviewer: lazy readers, writers and streaming computations.

Everything the GUI draws and the batch mode reports is computed here. This package
never imports Qt, so scripts, notebooks and ``aptviewer --batch`` can use it on a
machine without a display.
"""

from .accumulate import (
    Histogram1D,
    Histogram2D,
    chunked_apply,
    chunked_histogram,
    chunked_histogram2d,
    chunked_min_max,
    iter_column_chunks,
    iter_table_chunks,
)
from .apt_format import SectionWarning, open_apt, write_apt
from .ato_format import open_ato
from .diagnostics import (
    DRIFT_COLUMNS,
    compute_tof_segment_drift,
    normalize_signal_windows,
    summarize_processed_dataset,
)
from .errors import (
    AptViewerError,
    DataFormatError,
    InsufficientDiskSpaceError,
    OperationCancelled,
    TableClosedError,
)
from .lazy import DEFAULT_CHUNK_SIZE, LazyColumn, LazyTable
from .overview import (
    DatasetOverview,
    OverviewAccumulator,
    overview_accumulator_for,
    processed_dataset_overview,
    stream_overview,
)
from .progress import is_cancelled, raise_if_cancelled
from .readers import (
    EPOS_COLUMNS,
    EPOS_DTYPE,
    POS_COLUMNS,
    POS_DTYPE,
    TruncatedRecordWarning,
    fetch_dataset_from_dld_grp,
    open_any,
    open_epos,
    open_pos,
    open_processed_hdf5,
    open_pyccapt_raw_hdf5,
    read_epos,
    read_epos_lazy,
    read_hdf5,
    read_pos,
    read_pos_lazy,
    sniff_format,
)
from .reflectron import (
    PROCESSED_COLUMNS,
    ReflectronMesh,
    correct_detector_coordinates,
    correct_epos_streaming,
    correct_table_streaming,
    correction_plan,
    list_builtin_presets,
    load_builtin_preset,
    load_mesh,
)
from .writers import atomic_output, check_free_space, store_df_to_hdf, write_epos, write_pos

__all__ = [
    "DEFAULT_CHUNK_SIZE", "EPOS_COLUMNS", "EPOS_DTYPE", "POS_COLUMNS", "POS_DTYPE",
    "AptViewerError", "DataFormatError", "InsufficientDiskSpaceError", "OperationCancelled",
    "TableClosedError", "TruncatedRecordWarning",
    "LazyColumn", "LazyTable",
    "open_apt", "open_ato", "write_apt", "SectionWarning",
    "open_any", "open_epos", "open_pos", "open_processed_hdf5", "open_pyccapt_raw_hdf5", "sniff_format",
    "read_epos", "read_epos_lazy", "read_hdf5", "read_pos", "read_pos_lazy", "fetch_dataset_from_dld_grp",
    "atomic_output", "check_free_space", "store_df_to_hdf", "write_epos", "write_pos",
    "Histogram1D", "Histogram2D", "chunked_apply", "chunked_histogram", "chunked_histogram2d",
    "chunked_min_max", "iter_column_chunks", "iter_table_chunks",
    "DatasetOverview", "OverviewAccumulator", "overview_accumulator_for", "processed_dataset_overview",
    "stream_overview", "is_cancelled", "raise_if_cancelled",
    "DRIFT_COLUMNS", "compute_tof_segment_drift", "normalize_signal_windows", "summarize_processed_dataset",
    "PROCESSED_COLUMNS", "ReflectronMesh", "correct_detector_coordinates", "correct_epos_streaming",
    "correct_table_streaming", "correction_plan",
    "list_builtin_presets", "load_builtin_preset", "load_mesh",
]
