"""Reading a data set from a CSV file: numeric features and a 0/1 target, every problem one line.

NumPy and pandas only (no JAX), so that resolving a config never starts JAX. The arrays are
sample-major here; :func:`study.data.csv_data` turns them into the engine's feature-major layout.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from study.errors import ConfigError


def load_csv(path: str, features: tuple[str, ...], target: str):
    """Read a CSV of numeric features and a 0/1 target (cached while the file is unchanged).

    Returns ``(feature_names, inputs: float64[n_samples, dim], targets: float64[n_samples])``.
    Every problem (missing or empty file, missing column, non-numeric value, a target that is
    not 0/1) raises a one-line :class:`ConfigError`.
    """
    try:
        stat = os.stat(path)
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = None  # _read_csv reports what is wrong
    return _read_csv(path, tuple(features), target, version)


@functools.lru_cache(maxsize=32)
def _read_csv(path: str, features: tuple[str, ...], target: str, version):
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"data.path = {path!r}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"data.path = {path!r}: is a directory, expected a CSV file") from None
    except pd.errors.EmptyDataError:
        raise ConfigError(f"data.path = {path!r}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"data.path = {path!r}: not a readable CSV ({reason})") from None
    if frame.empty:
        raise ConfigError(f"data.path = {path!r}: the file has no rows")
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise ConfigError(
            f"data.target = {target!r}: no such column in {path!r}; columns: {', '.join(columns)}"
        )
    features = tuple(features) or tuple(c for c in columns if c != target)
    if not features:
        raise ConfigError(f"data.path = {path!r}: no feature columns besides the target")
    for name in features:
        if name not in columns:
            raise ConfigError(
                f"data.features: no column {name!r} in {path!r}; columns: {', '.join(columns)}"
            )
    for name in (*features, target):
        values = pd.to_numeric(frame[name], errors="coerce")
        if values.isna().any() or not np.isfinite(values.to_numpy(dtype=float)).all():
            row = int(np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)))[0])
            raise ConfigError(
                f"data.path = {path!r}: column {name!r} has a non-numeric or "
                f"missing value at row {row + 1} ({frame[name].iloc[row]!r})"
            )
    targets = frame[target].to_numpy(dtype=float)
    if not np.isin(targets, (0.0, 1.0)).all():
        bad = targets[~np.isin(targets, (0.0, 1.0))][0]
        raise ConfigError(f"data.target = {target!r}: values must be 0 or 1, found {bad!r}")
    inputs = frame[list(features)].to_numpy(dtype=float)
    return features, inputs, targets
