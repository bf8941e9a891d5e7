"""What a finished run's folder must hold to be read: tables as ``study run`` wrote them.

A folder can be edited by hand or damaged after its run: a table truncated, a column dropped,
rows repeated or emptied, a count raised, a file where a folder belongs. Every reader (``plot``,
``report``, ``compare``, ``plan``) opens a folder through :class:`study.results.ResultsFolder`,
which reads the tables with :func:`read_table` and checks them here, so that all of them refuse
the same folders with the same one-line message (a ConfigError, exit status 2) naming the file
and what is wrong, instead of failing somewhere inside or reading wrong numbers. The checks:

- each table is readable, and has the columns every reader needs;
- ``runs.parquet`` has the rows the manifest records, no (setting, initialization) twice, and
  no null flag (``dead_init``, ``dead_end``, ``revived``, ``diverged``);
- ``summary.csv`` has a row per setting the manifest records, its proportions lie in [0, 1],
  its counts between 0 and ``n_inits``, and its totals are those of the runs (so that a report,
  which reads the summary, and a comparison, which reads the runs, say the same).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from study.config import SETTING_KEYS, VARIANT_COLUMN
from study.errors import ConfigError
from study.results.layout import COMPARISONS, FIGURES, REPORT_HTML, REPORT_MD, RUNS
from study.results.manifest import Manifest

# A row's flags (booleans, never null: shared/INTERFACE.md).
RUN_FLAGS = ("dead_init", "dead_end", "revived", "diverged")
SUMMARY_COLUMNS = ("n_inits", "n_valid", "p_dead_init", "p_dead_end")
# Counts of summary.csv against the runs they count: (flag, counted over valid runs only).
_COUNTED = {
    "k_dead_init": ("dead_init", True),
    "k_dead_end": ("dead_end", True),
    "k_revived": ("revived", True),
    "k_diverged": ("diverged", False),
}
# What a reader writes into the folder, and so must be a folder or a file where it is.
_FOLDERS, _FILES = (FIGURES, COMPARISONS), (REPORT_MD, REPORT_HTML)


REWRITE = "rerun the same `study run` with --force to write it again"


def damaged(path: Path, what: str, remedy: str = REWRITE) -> ConfigError:
    """The one-line refusal of a file of a results folder that is not as its run wrote it."""
    return ConfigError(f"{str(path)!r}: {what}; not as `study run` wrote it: {remedy}")


def read_table(path: Path, read: Callable[[Path], pd.DataFrame]) -> pd.DataFrame:
    """``read(path)``, any failure of the reader (a truncated file, an empty one, a file that
    is not a table) turned into :func:`damaged`'s one line."""
    try:
        return read(path)
    except Exception as err:  # noqa: BLE001 - whatever the reader says, the file is unreadable
        reason = (str(err).strip().splitlines() or [""])[0]
        raise damaged(path, f"unreadable ({type(err).__name__}: {reason})") from None


def check_layout(folder: Path) -> None:
    """Refuse a file where a reader writes a folder (``figures/``), or the other way round."""
    remedy = "move or remove it"
    for name in _FOLDERS:
        if (folder / name).exists() and not (folder / name).is_dir():
            raise damaged(folder / name, "a file where the folder of that name belongs", remedy)
    for name in _FILES:
        if (folder / name).is_dir():
            raise damaged(folder / name, "a folder where the file of that name belongs", remedy)


def _require(path: Path, table: pd.DataFrame, columns) -> None:
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise damaged(path, f"no column {', '.join(map(repr, missing))}")


def _rows(path: Path, table: pd.DataFrame, expected: int | None, what: str) -> None:
    if expected is not None and len(table) != expected:
        raise damaged(path, f"{len(table)} rows, where the manifest records {expected} {what}")


def check_runs(path: Path, runs: pd.DataFrame, manifest: Manifest) -> None:
    """Refuse ``runs.parquet`` (read from ``path``) unless it is whole and as written."""
    settings = [name for name in SETTING_KEYS if name in manifest.config]
    variant = [VARIANT_COLUMN] if "variants" in manifest.config else []
    _require(path, runs, [*variant, *settings, "init", *RUN_FLAGS])
    _rows(path, runs, manifest.n_rows, "(settings x initializations)")
    for flag in RUN_FLAGS:
        nulls = np.flatnonzero(runs[flag].isna().to_numpy())
        if nulls.size:
            raise damaged(path, f"column {flag!r} is empty at row {nulls[0]}, where it is a flag")
    keys = [*variant, *(name for name in SETTING_KEYS if name in runs.columns), "init"]
    repeated = np.flatnonzero(runs.duplicated(keys).to_numpy())
    if repeated.size:
        raise damaged(path, f"row {repeated[0]} repeats the setting and initialization of another")


def check_summary(
    path: Path, summary: pd.DataFrame, manifest: Manifest, runs: pd.DataFrame
) -> None:
    """Refuse ``summary.csv`` (read from ``path``) unless it summarizes ``runs`` as written."""
    _require(path, summary, SUMMARY_COLUMNS)
    _rows(path, summary, manifest.n_settings, "settings")
    n_inits = pd.to_numeric(summary["n_inits"], errors="coerce")
    proportions = [name for name in summary.columns if name.startswith("p_")]
    counts = [name for name in summary.columns if name.startswith(("k_", "n_"))]
    for name in [*proportions, *counts]:
        values = pd.to_numeric(summary[name], errors="coerce")
        upper = 1 if name in proportions else n_inits
        outside = ~values.between(0, upper) & (values.notna() | (name in counts))
        if outside.any():
            row = int(np.flatnonzero(outside.to_numpy())[0])
            allowed = "[0, 1]" if name in proportions else "0 to n_inits"
            value = summary[name].iloc[row]
            raise damaged(path, f"{name} = {value} in row {row}, outside {allowed}")
    valid = ~runs["diverged"].astype(bool)
    totals = {"n_inits": len(runs), "n_valid": int(valid.sum())}
    for name, (flag, over_valid) in _COUNTED.items():
        totals[name] = int((runs[flag].astype(bool) & (valid if over_valid else True)).sum())
    for name, total in totals.items():
        if name in summary.columns and int(summary[name].sum()) != total:
            raise damaged(
                path, f"{name} adds up to {int(summary[name].sum())}, where {RUNS} counts {total}"
            )
