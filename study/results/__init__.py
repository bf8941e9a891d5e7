"""The results folder of a run: the one package that reads and writes it.

Every other module gets a :class:`ResultsFolder` (or the DataFrames and :class:`Manifest` it
reads) from here, never a path to open. The folder's layout is in :mod:`.layout`; the package's
modules, one concept each:

* :mod:`.atomic`: every file is written whole under a temporary name and renamed into place.
* :mod:`.lock`: ``run.lock``, one run at a time writes into a folder.
* :mod:`.manifest`: :class:`Manifest`, ``manifest.json`` read and written.
* :mod:`.ownership`: which folders a run may write into, resuming or clearing what is there.
* :mod:`.partial`: the finished groups of an unfinished run.
* :mod:`.tables`: ``runs.parquet``, ``curves.parquet`` and ``summary.csv`` written.
* :mod:`.folder`: :class:`ResultsFolder`, a finished run's folder opened once: its tables,
  figures, report and comparisons.
* :mod:`.figure_cache`: figures drawn before, by the digest of everything they show.

No module here imports JAX: reading results, plotting and reporting never start it.
"""

from study.errors import FormatError
from study.results.atomic import (
    TEMP_MARK,
    atomic_write,
    remove_temporaries,
    write_csv,
    write_json,
    write_parquet,
)
from study.results.figure_cache import FIGURE_CACHE_BYTES, FigureCache, cache_names
from study.results.folder import (
    ResultsFolder,
    is_complete,
    read_curves,
    read_runs,
    read_summary,
    runs_of,
    save_figures,
)
from study.results.layout import (
    COMPARISONS,
    CURVES,
    FIGURE_DPI,
    FIGURES,
    FORMAT_VERSION,
    LOCK,
    MANIFEST,
    MARKER,
    MARKER_TEXT,
    PARTIAL,
    RUNS,
    SUMMARY,
)
from study.results.lock import locked
from study.results.manifest import (
    Manifest,
    file_digest,
    read_manifest,
    write_manifest,
)
from study.results.ownership import clear, open_folder, prepare
from study.results.partial import (
    PartialGroup,
    load_group,
    partial_path,
    remove_partial,
    save_group,
)
from study.results.tables import write_results

__all__ = [
    "COMPARISONS",
    "CURVES",
    "FIGURES",
    "FIGURE_CACHE_BYTES",
    "FIGURE_DPI",
    "FORMAT_VERSION",
    "LOCK",
    "MANIFEST",
    "MARKER",
    "MARKER_TEXT",
    "PARTIAL",
    "RUNS",
    "SUMMARY",
    "TEMP_MARK",
    "FigureCache",
    "FormatError",
    "Manifest",
    "PartialGroup",
    "ResultsFolder",
    "atomic_write",
    "cache_names",
    "clear",
    "file_digest",
    "is_complete",
    "load_group",
    "locked",
    "open_folder",
    "partial_path",
    "prepare",
    "read_curves",
    "read_manifest",
    "read_runs",
    "read_summary",
    "remove_partial",
    "remove_temporaries",
    "runs_of",
    "save_figures",
    "save_group",
    "write_csv",
    "write_json",
    "write_manifest",
    "write_parquet",
    "write_results",
]
