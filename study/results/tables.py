"""The tables of a finished run: ``runs.parquet``, ``curves.parquet`` and ``summary.csv``.

:func:`write_results` writes them, the manifest that marks them complete last;
:func:`read_summary_csv` reads the summary back with its text columns as text. Reading goes
through :class:`study.results.folder.ResultsFolder`, which checks first that the run finished.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.config import SCHEMA, TOP_LEVEL, VARIANT_COLUMN
from study.results import atomic
from study.results.layout import CURVES, RUNS, SUMMARY
from study.results.manifest import Manifest, write_manifest

# Text columns of summary.csv: read as text (an empty one is "", as in runs.parquet, not NaN;
# a target named "1" stays "1").
TEXT_COLUMNS = (
    VARIANT_COLUMN,
    *(key.name for key in SCHEMA if key.kind in (str, list) and key.name not in TOP_LEVEL),
    "theory",
    "theory_note",
    "note",
)


def read_summary_csv(path: Path) -> pd.DataFrame:
    """``summary.csv`` at ``path``, its :data:`TEXT_COLUMNS` as text ("" where empty)."""
    text = dict.fromkeys(TEXT_COLUMNS, str)
    summary = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=text)
    for name in TEXT_COLUMNS:
        if name in summary:
            summary[name] = summary[name].fillna("")
    return summary


def write_results(
    folder: str | Path,
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    manifest: Manifest,
    curves: pd.DataFrame | None = None,
) -> None:
    """Write a finished run: the tables first, the manifest that marks them complete last.
    ``curves`` (the long table of :class:`study.engine.GroupResult`) goes to ``curves.parquet``;
    None writes none."""
    folder = Path(folder)
    if curves is not None:
        atomic.write_parquet(folder / CURVES, curves)
    atomic.write_parquet(folder / RUNS, runs)
    atomic.write_csv(folder / SUMMARY, summary)
    write_manifest(folder, manifest)
