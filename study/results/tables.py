"""The tables of a finished run: ``runs.parquet``, ``curves.parquet`` and ``summary.csv``.

:func:`write_results` writes them, the manifest that marks them complete last;
:func:`read_summary_csv` reads the summary back with its text columns as text. Reading goes
through :class:`study.results.folder.ResultsFolder`, which checks first that the run finished.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from study.config import SCHEMA, SETTING_KEYS, TOP_LEVEL
from study.results import atomic
from study.results.layout import CURVE_PREFIX, CURVES, RUNS, SUMMARY
from study.results.manifest import Manifest, write_manifest

# Text columns of summary.csv: read as text (an empty one is "", as in runs.parquet, not NaN;
# a target named "1" stays "1").
TEXT_COLUMNS = (
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


def split_curves(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``(runs without the curve columns, curves)``: the engine's per-initialization curves
    (``curve_*`` columns of arrays) as the long table of ``curves.parquet``, a row per
    (setting, initialization, logged step); None when the runs have no curves."""
    names = [name for name in runs if name.startswith(CURVE_PREFIX)]
    if not names:
        return runs, None
    # Groups of a study may differ: no curves (train.curves off), or fewer layers (a missing
    # column is NaN there); every row has as many points as its steps, NaN where it has none.
    steps = runs[f"{CURVE_PREFIX}step"].map(lambda v: v if isinstance(v, np.ndarray) else [])
    lengths = steps.map(len).to_numpy()
    keys = [name for name in SETTING_KEYS if name in runs] + ["init"]
    long = {name: np.repeat(runs[name].to_numpy(), lengths) for name in keys}
    for name in names:
        parts = [
            cell if isinstance(cell, np.ndarray) else np.full(length, np.nan)
            for cell, length in zip(runs[name], lengths, strict=True)
        ]
        long[name.removeprefix(CURVE_PREFIX)] = np.concatenate(parts) if parts else np.array([])
    return runs.drop(columns=names), pd.DataFrame(long)


def write_results(
    folder: str | Path, runs: pd.DataFrame, summary: pd.DataFrame, manifest: Manifest
) -> None:
    """Write a finished run: the tables first, the manifest that marks them complete last.
    Curves among the runs' columns go to ``curves.parquet``."""
    folder = Path(folder)
    runs, curves = split_curves(runs)
    if curves is not None:
        atomic.write_parquet(folder / CURVES, curves)
    atomic.write_parquet(folder / RUNS, runs)
    atomic.write_csv(folder / SUMMARY, summary)
    write_manifest(folder, manifest)
