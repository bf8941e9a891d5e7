"""Training data: synthetic clouds shifted by an offset, a 1-D regression target, or a CSV file.

Arrays are feature-major, ``inputs: float[dim, n_samples]``, ``targets: float[n_samples]``, so that
the engine's elementwise formulation runs along the long sample axis.

The synthetic base cloud is centered; ``offset`` is added to every feature afterwards, and the
labels are a rule on the *base* cloud, so moving the offset moves the data without changing which
point has which label. Labels are balanced exactly: a point is positive when its projection on
the alternating direction (1, -1, 1, ...) is above the median projection.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from study.config import ConfigError, Numeric, Structure


class Data(NamedTuple):
    """A training set: ``inputs: float[dim, n_samples]``, ``targets: float[n_samples]``."""

    inputs: jax.Array
    targets: jax.Array


def _balanced_labels(base: jax.Array) -> jax.Array:
    """1 for the upper half of the projections on (1, -1, 1, ...); exactly balanced."""
    dim, n = base.shape
    direction = jnp.where(jnp.arange(dim) % 2 == 0, 1.0, -1.0).astype(base.dtype)
    projection = direction @ base
    rank = jnp.argsort(jnp.argsort(projection))
    return (rank >= n // 2).astype(base.dtype)


def _target_function(name: str, x: jax.Array) -> jax.Array:
    return {
        "abs": jnp.abs,
        "square": jnp.square,
        "sin": lambda v: jnp.sin(jnp.pi * v),
        "linear": lambda v: v,
        "relu": lambda v: jnp.maximum(v, 0.0),
    }[name](x)


def standardize(inputs: jax.Array) -> jax.Array:
    """z-score each feature (row) with its own mean and standard deviation."""
    mean = inputs.mean(axis=1, keepdims=True)
    std = inputs.std(axis=1, keepdims=True)
    return (inputs - mean) / jnp.where(std > 0, std, 1.0)


def make_data(structure: Structure, numeric: Numeric, key: jax.Array, csv: Data | None) -> Data:
    """The training set of one setting (traceable: ``numeric`` may hold tracers).

    Args:
      structure: the static setting; ``data_kind``, ``dim``, ``n_samples``, ``standardize``.
      numeric: supplies ``offset``, ``target_scale`` and ``target_shift``.
      key: the data key; the same key gives the same base cloud for every offset.
      csv: the file's data for ``data_kind = 'csv'`` (labels already 0/1), else None.
    """
    dtype = jnp.dtype(structure.dtype)
    shape = (structure.dim, structure.n_samples)
    # Draws are made in float32 and cast, so a float64 run sees a float32 run's data exactly.
    kind = structure.data_kind
    if kind == "csv":
        base, targets = csv.inputs.astype(dtype), csv.targets.astype(dtype)
    elif kind == "gaussian":
        base = jax.random.normal(key, shape, jnp.float32).astype(dtype)
        targets = _balanced_labels(base)
    elif kind == "uniform":
        base = jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0).astype(dtype)
        targets = _balanced_labels(base)
    elif kind == "function":
        base = jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0).astype(dtype)
        f = _target_function(structure.function, base[0])
        targets = numeric.target_scale * f + numeric.target_shift
    else:
        raise ValueError(f"unknown data kind {kind!r}")
    inputs = base + jnp.asarray(numeric.offset, dtype)
    if structure.standardize:
        inputs = standardize(inputs)
    return Data(inputs.astype(dtype), targets.astype(dtype))


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


def csv_data(structure: Structure) -> Data | None:
    """The CSV file of a structure as feature-major arrays, or None for synthetic data."""
    if structure.data_kind != "csv":
        return None
    _, inputs, targets = load_csv(structure.csv_path, structure.features, structure.target)
    dtype = np.dtype(structure.dtype)
    return Data(np.asarray(inputs.T, dtype), np.asarray(targets, dtype))
