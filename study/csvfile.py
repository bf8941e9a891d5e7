"""Reading a data set from a CSV file: numeric features and a 0/1 target, every problem one line.

NumPy and pandas only (no JAX), so that resolving a config never starts JAX. The arrays are
sample-major here; :func:`study.data.csv_data` turns them into the engine's feature-major layout.
"""

from __future__ import annotations

import collections
import csv
import functools
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from study.errors import ConfigError

if TYPE_CHECKING:  # pandas is imported when a file is read, not with the config
    import pandas as pd

# What a CSV resolves to: its feature columns, ``inputs: float64[n_samples, dim]`` and
# ``targets: float64[n_samples]``.
Table = tuple[tuple[str, ...], np.ndarray, np.ndarray]


def load_csv(path: str, features: Iterable[str], target: str, dtype: str = "float32") -> Table:
    """Read a CSV of numeric features and a 0/1 target (cached while the file is unchanged).

    Returns ``(feature_names, inputs: float64[n_samples, dim], targets: float64[n_samples])``.
    Every problem (a file that is missing, empty or unreadable, a header that names a column
    twice, a missing column, ``data.features`` naming the target or a column twice, a value that
    is not a number or not finite in ``dtype``, a target that is not 0/1) raises a one-line
    :class:`ConfigError` naming the key and, for a value, its column and row. The checks take
    time linear in the file's size.
    """
    try:
        stat = os.stat(path)
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = None  # _read_csv reports what is wrong
    return _read_csv(path, tuple(features), target, dtype, version)


@functools.lru_cache(maxsize=32)
def _read_csv(
    path: str,
    features: tuple[str, ...],
    target: str,
    dtype: str,
    version: tuple[int, int] | None,
) -> Table:
    frame = _read_frame(path)
    columns = _header(path, frame)
    if target not in columns:
        raise ConfigError(
            f"data.target = {target!r}: no such column in {path!r}; columns: {_some(columns)}"
        )
    names = _check_features(path, features, target, columns)
    inputs = _numeric(frame, names, path, dtype)
    targets = _numeric(frame, (target,), path, dtype)[:, 0]
    if not np.isin(targets, (0.0, 1.0)).all():
        bad = targets[~np.isin(targets, (0.0, 1.0))][0]
        raise ConfigError(f"data.target = {target!r}: values must be 0 or 1, found {bad!r}")
    return names, inputs, targets


def _read_frame(path: str) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"data.path = {path!r}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"data.path = {path!r}: is a directory, expected a CSV file") from None
    except OSError as err:  # unreadable, a symbolic link loop, ...
        raise ConfigError(f"data.path = {path!r}: cannot read it ({err.strerror or err})") from None
    except pd.errors.EmptyDataError:
        raise ConfigError(f"data.path = {path!r}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"data.path = {path!r}: not a readable CSV ({reason})") from None
    if frame.empty:
        raise ConfigError(f"data.path = {path!r}: the file has no rows")
    return frame


def _header(path: str, frame: pd.DataFrame) -> list[str]:
    """The column names as the file writes them (pandas renames a repeated name to ``a.1``)."""
    with open(path, newline="", encoding="utf-8-sig") as file:
        names = next(csv.reader(file), [])
    repeated = [name for name, count in collections.Counter(names).items() if count > 1]
    if repeated:
        raise ConfigError(f"data.path = {path!r}: the header names {_some(repeated)} twice")
    return [str(c) for c in frame.columns]


def _check_features(
    path: str, given: tuple[str, ...], target: str, columns: list[str]
) -> tuple[str, ...]:
    """The feature columns: those given (all present, once each, not the target), or every
    column but the target when none are given."""
    known = set(columns)
    features = given or tuple(c for c in columns if c != target)
    if not features:
        raise ConfigError(f"data.path = {path!r}: no feature columns besides the target")
    missing = [name for name in features if name not in known]
    if missing:
        raise ConfigError(
            f"data.features: no column {missing[0]!r} in {path!r}; columns: {_some(columns)}"
        )
    if target in features:
        raise ConfigError(
            f"data.features names the target {target!r}: the label would be an input; "
            "list feature columns only"
        )
    repeated = [name for name, count in collections.Counter(features).items() if count > 1]
    if repeated:
        raise ConfigError(f"data.features names {_some(repeated)} twice; name each column once")
    return features


def _numeric(frame: pd.DataFrame, names: tuple[str, ...], path: str, dtype: str) -> np.ndarray:
    """``float64[n, len(names)]``, every value a number that is finite in ``dtype``."""
    import pandas as pd
    from pandas.api.types import is_numeric_dtype

    position = {name: i for i, name in enumerate(map(str, frame.columns))}
    block = frame.iloc[:, [position[name] for name in names]]
    text = [n for n, kind in zip(names, block.dtypes, strict=True) if not is_numeric_dtype(kind)]
    raw = block
    if text:
        block = block.assign(**{n: pd.to_numeric(block[n], errors="coerce") for n in text})
    values = block.to_numpy(dtype=float)
    with np.errstate(over="ignore"):
        finite = np.isfinite(values.astype(dtype))
    if not finite.all():
        column = int(np.flatnonzero(~finite.all(axis=0))[0])
        row = int(np.flatnonzero(~finite[:, column])[0])
        value = raw.iloc[row, column]
        value = value.item() if isinstance(value, np.generic) else value
        raise ConfigError(
            f"data.path = {path!r}: column {names[column]!r} has a non-numeric, missing or "
            f"out-of-range value at row {row + 1} ({value!r}); values must be finite {dtype} "
            "numbers"
        )
    return values


def _some(names: Iterable[object], shown: int = 10) -> str:
    """The first names of a list, comma-separated, with a count of the rest."""
    listed = list(names)
    rest = f", ... ({len(listed) - shown} more)" if len(listed) > shown else ""
    return ", ".join(map(str, listed[:shown])) + rest
