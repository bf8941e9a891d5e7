"""Training data: synthetic clouds shifted by an offset, a 1-D regression target, or a CSV file.

Arrays are feature-major, ``inputs: float[dim, n_samples]``, ``targets: float[n_samples]``, so that
the engine's elementwise formulation runs along the long sample axis.

The synthetic base cloud is centered; ``offset`` is added to every feature afterwards, and the
labels are a rule on the *base* cloud, so moving the offset moves the data without changing which
point has which label. Labels are balanced exactly: a point is positive when its projection on
the alternating direction (1, -1, 1, ...) is above the median projection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from study import runtime
from study.config import STREAMS, Numeric, Structure
from study.csvfile import load_csv
from study.errors import ConfigError

# JAX arrays in the engine; NumPy arrays for a CSV file's data before they enter the program.
ArrayT = TypeVar("ArrayT", jax.Array, np.ndarray)


class Data(NamedTuple, Generic[ArrayT]):
    """A training set: ``inputs: float[dim, n_samples]``, ``targets: float[n_samples]``."""

    inputs: ArrayT
    targets: ArrayT


def key_streams(seed: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """``(data_root, init_root)``: the two independent key streams of a study seed (an int, or
    a ``uint32`` scalar, traced inside the compiled program)."""
    data_root, init_root = jax.random.split(jax.random.key(seed))
    return data_root, init_root


def _balanced_labels(base: jax.Array) -> jax.Array:
    """1 for the upper half of the projections on (1, -1, 1, ...); exactly balanced."""
    dim, n = base.shape
    direction = jnp.where(jnp.arange(dim) % 2 == 0, 1.0, -1.0).astype(base.dtype)
    projection = direction @ base
    rank = jnp.argsort(jnp.argsort(projection))
    return (rank >= n // 2).astype(base.dtype)


def target_function(name: str, x: jax.Array) -> jax.Array:
    """f(x) of ``data.function`` ``name`` (``data.kind = 'function'``), elementwise.

    ``x_sin5x`` (x sin 5x) and ``step_sin5x`` (1 if x > 0 else 0, plus 0.2 sin 5x) are the
    smooth and the discontinuous 1-D targets Lu et al. fit beside |x| (scripts/reproduce_lu2019.py
    says what is known of their settings)."""
    return {
        "abs": jnp.abs,
        "square": jnp.square,
        "sin": lambda v: jnp.sin(jnp.pi * v),
        "linear": lambda v: v,
        "relu": lambda v: jnp.maximum(v, 0.0),
        "x_sin5x": lambda v: v * jnp.sin(5.0 * v),
        "step_sin5x": lambda v: (v > 0).astype(v.dtype) + 0.2 * jnp.sin(5.0 * v),
    }[name](x)


def standardize(inputs: jax.Array) -> jax.Array:
    """z-score each feature (row) with its own mean and standard deviation."""
    mean = inputs.mean(axis=1, keepdims=True)
    std = inputs.std(axis=1, keepdims=True)
    return (inputs - mean) / jnp.where(std > 0, std, 1.0)


def make_data(
    structure: Structure, numeric: Numeric, key: jax.Array, csv: Data[Any] | None
) -> Data[jax.Array]:
    """The training set of one setting (traceable: ``numeric`` may hold tracers).

    Args:
      structure: the static setting; ``data_kind``, ``dim``, ``n_samples``, ``standardize``.
      numeric: supplies ``offset``, ``target_scale`` and ``target_shift``.
      key: the data key; the same key gives the same base cloud for every offset.
      csv: the file's data for ``data_kind = 'csv'`` (labels already 0/1), else None.
    """
    dtype = jnp.dtype(structure.dtype)
    if structure.data_kind in STREAMS:  # drawn during training from each initialization's key
        return Data(jnp.zeros((structure.dim, 1), dtype), jnp.zeros((1,), dtype))
    shape = (structure.dim, structure.n_samples)
    # Draws are made in float32 and cast, so a float64 run sees a float32 run's data exactly.
    kind = structure.data_kind
    if kind == "csv":
        if csv is None:
            raise ValueError("data.kind = 'csv' needs the file's data (csv_data)")
        base, targets = csv.inputs.astype(dtype), csv.targets.astype(dtype)
    elif kind == "gaussian":
        base = jax.random.normal(key, shape, jnp.float32).astype(dtype)
        targets = _balanced_labels(base)
    elif kind == "uniform":
        base = jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0).astype(dtype)
        targets = _balanced_labels(base)
    elif kind == "function":
        base = jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0).astype(dtype)
        f = target_function(structure.function, base[0])
        targets = numeric.target_scale * f + numeric.target_shift
    else:
        raise ValueError(f"unknown data kind {kind!r}")
    inputs = base + jnp.asarray(numeric.offset, dtype)
    if structure.standardize:
        inputs = standardize(inputs)
    return Data(inputs.astype(dtype), targets.astype(dtype))


def csv_data(structure: Structure) -> Data[np.ndarray] | None:
    """The CSV file of a structure as feature-major arrays, or None for synthetic data."""
    if structure.data_kind != "csv":
        return None
    _, inputs, targets = load_csv(
        structure.csv_path, structure.features, structure.target, structure.dtype
    )
    dtype = np.dtype(structure.dtype)
    return Data(np.asarray(inputs.T, dtype), np.asarray(targets, dtype))


def setting_inputs(values: Mapping[str, Any], seed: int) -> np.ndarray | None:
    """The training inputs ``float[n_samples, dim]`` the engine used for a setting and seed
    (:func:`setting_data`), or None where they cannot be rebuilt."""
    made = setting_data(values, seed)
    return None if made is None else made.inputs.T


def setting_data(values: Mapping[str, Any], seed: int) -> Data[np.ndarray] | None:
    """The training set (feature-major, float64) the engine used for a setting and seed.

    The engine draws a setting's data set from the study seed's data stream
    (:func:`key_streams`), so it is rebuilt here exactly, without training. Returns
    None when the data are redrawn for every initialization (``data.resample``) or the setting
    cannot be rebuilt (e.g. a CSV file that has moved).
    """
    from study import config

    if values.get("data.resample", False) or values.get("data.kind") in STREAMS:
        return None
    flat = {}
    for name, value in values.items():
        if name not in config.KEYS or name in config.TOP_LEVEL:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if name == "data.features":
            value = [v for v in value.split(",") if v] if isinstance(value, str) else list(value)
        if isinstance(value, float) and np.isnan(value) and config.KEYS[name].nullable:
            value = None
        flat[name] = value
    try:
        setting = config.load_study(config.nest(flat)).settings[0]
    except (ConfigError, OSError):
        return None
    with runtime.precision(setting.structure.dtype):  # as the engine drew them
        data_root, _ = key_streams(seed)
        made = make_data(setting.structure, setting.numeric, data_root, csv_data(setting.structure))
        return Data(np.asarray(made.inputs, dtype=float), np.asarray(made.targets, dtype=float))


def constant_loss(targets: np.ndarray, loss: str) -> float:
    """The training loss of the best constant predictor of ``targets``: their variance for the
    squared error (``mse``, the mean's loss), the entropy of the mean label for ``bce`` (in
    nats: ln 2 for balanced labels). A trained network worse than this has not fit the data."""
    targets = np.asarray(targets, dtype=float)
    if loss == "mse":
        return float(np.mean((targets - targets.mean()) ** 2))
    if loss == "bce":
        mean = float(targets.mean())
        if mean in (0.0, 1.0):
            return 0.0
        return float(-(mean * np.log(mean) + (1 - mean) * np.log1p(-mean)))
    raise ValueError(f"loss {loss!r}: allowed: mse, bce")
