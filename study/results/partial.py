"""The finished structural groups of an unfinished run, in ``DIR/.partial/``.

Each finished group is ``group-<key>.parquet`` (its runs) beside ``group-<key>.json`` (its
timing) and, when it records curves, ``curves-<key>.parquet`` (its curves; not named
``group-*.parquet``, so those files stay one per finished group). The timing and
the curves are written first, the runs last: a group's runs file exists only once the group is
complete and written whole (:mod:`study.results.atomic`), so a resumed run reads exactly the
groups finished.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from study.results import atomic
from study.results.layout import PARTIAL

# The runs of a group saved by an earlier version held its curves as columns of arrays with
# this prefix; such a group is computed again.
_ARRAY_CURVES_PREFIX = "curve_"


class PartialGroup(NamedTuple):
    """A finished group as saved: its tables (``curves`` None without curves) and timing."""

    runs: pd.DataFrame
    curves: pd.DataFrame | None
    timing: dict


def partial_path(folder: Path, key: str) -> Path:
    """Where the group named ``key`` (``runner.group_key``) is kept: its runs' parquet file."""
    return folder / PARTIAL / f"group-{key}.parquet"


def _curves_path(folder: Path, key: str) -> Path:
    return folder / PARTIAL / f"curves-{key}.parquet"


def save_group(
    folder: Path, key: str, runs: pd.DataFrame, curves: pd.DataFrame | None, timing: dict
) -> None:
    """Record a finished group: its timing and curves first, then its runs (whose presence
    marks it done)."""
    (folder / PARTIAL).mkdir(exist_ok=True)
    path = partial_path(folder, key)
    atomic.write_json(path.with_suffix(".json"), timing)
    if curves is not None:
        atomic.write_parquet(_curves_path(folder, key), curves)
    atomic.write_parquet(path, runs)


def has_finished_groups(folder: Path) -> bool:
    """Whether an unfinished run in ``folder`` saved any group."""
    return any((folder / PARTIAL).glob("group-*.parquet"))


def remove_partial(folder: Path) -> None:
    """Remove the finished groups of a run once its tables are written."""
    shutil.rmtree(folder / PARTIAL, ignore_errors=True)


def load_group(folder: Path, key: str, n_rows: int, with_curves: bool) -> PartialGroup | None:
    """A finished group, or None if it is not (validly) there: missing, unreadable, not of
    ``n_rows`` runs, without the curves it records (``with_curves``), or saved by an earlier
    version (its curves among the runs' columns)."""
    path = partial_path(folder, key)
    if not path.exists():
        return None
    try:
        runs = pd.read_parquet(path)
        curves_path = _curves_path(folder, key)
        curves = pd.read_parquet(curves_path) if curves_path.exists() else None
    except Exception:  # noqa: BLE001 - an unreadable file is recomputed, whatever the reason
        return None
    if len(runs) != n_rows or any(name.startswith(_ARRAY_CURVES_PREFIX) for name in runs):
        return None
    if (curves is not None) != with_curves:
        return None
    if curves is not None and n_rows and len(curves) % n_rows:  # not whole curves per run
        return None
    try:
        timing = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        timing = {}
    return PartialGroup(runs, curves, timing)
