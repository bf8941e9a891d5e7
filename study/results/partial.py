"""The finished structural groups of an unfinished run, in ``DIR/.partial/``.

Each finished group is ``group-<key>.parquet`` (its runs) beside ``group-<key>.json`` (its
timing), the timing written first: a group's table exists only once the group is complete and
written whole (:mod:`study.results.atomic`), so a resumed run reads exactly the groups finished.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from study.results import atomic
from study.results.layout import PARTIAL


def partial_path(folder: Path, key: str) -> Path:
    """Where the group named ``key`` (``runner.group_key``) is kept: its runs' parquet file."""
    return folder / PARTIAL / f"group-{key}.parquet"


def save_group(folder: Path, key: str, runs: pd.DataFrame, timing: dict) -> None:
    """Record a finished group: its timing first, then its table (whose presence marks it done)."""
    (folder / PARTIAL).mkdir(exist_ok=True)
    path = partial_path(folder, key)
    atomic.write_json(path.with_suffix(".json"), timing)
    atomic.write_parquet(path, runs)


def remove_partial(folder: Path) -> None:
    """Remove the finished groups of a run once its tables are written."""
    shutil.rmtree(folder / PARTIAL, ignore_errors=True)


def load_group(folder: Path, key: str, n_rows: int) -> tuple[pd.DataFrame, dict] | None:
    """A finished group's ``(runs, timing)``, or None if it is not (validly) there."""
    path = partial_path(folder, key)
    if not path.exists():
        return None
    try:
        runs = pd.read_parquet(path)
    except Exception:  # noqa: BLE001 - an unreadable file is recomputed, whatever the reason
        return None
    if len(runs) != n_rows:
        return None
    try:
        timing = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        timing = {}
    return runs, timing
