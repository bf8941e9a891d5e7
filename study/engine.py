"""Run settings through the compiled engine in bounded chunks and collect a tidy table.

This is the layer between the compiled programs of :mod:`study.train` (the start, shared by the
structures that draw the same data and parameters, and the training) and pandas: it stacks the
numeric parts of a structural group, splits the (setting, initialization) pairs into fixed-size
chunks (padded, so every chunk has the same shape and the group compiles once), places each chunk
on the devices (sharded along initializations: over every process's devices in a multi-process
run, see :mod:`study.distributed`), and turns the metrics into rows.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import pandas as pd

from study import distributed
from study.config import Setting, Structure, Study, group_by_structure
from study.data import csv_data
from study.errors import ConfigError
from study.host import cache_root, usable_cpus
from study.model import layer_sizes
from study.train import Metrics, Result, make_run, make_start, start_structure

# Bytes of working memory the automatic chunk size aims at per chunk on CPU; on an accelerator
# the budget is a share of the device's memory.
CPU_CHUNK_BYTES = 64 * 2**20
ACCELERATOR_MEMORY_SHARE = 0.25

# Compiles shorter than this are not worth a file in the persistent cache (the engine's programs
# take seconds; this keeps JAX's small helper programs out of it).
CACHE_MIN_COMPILE_S = 0.2

PER_LAYER = (
    "dead_units_init",
    "dead_units_end",
    "inactive_units_init",
    "inactive_units_end",
    "dormant_units_init",
    "dormant_units_end",
    "revived_units",
    "flipped_units",
    "reset_units",
)


class Chunk(NamedTuple):
    """One compiled call's share of a group: which settings and which initializations."""

    setting_slots: np.ndarray  # int[n_settings_per_chunk], indices into the group's settings
    init_indices: np.ndarray  # int[n_inits_per_chunk]
    n_settings: int  # real (unpadded) settings
    n_inits: int  # real (unpadded) initializations


def bytes_per_run(structure: Structure) -> int:
    """Rough working memory of one (setting, initialization) pair inside a chunk."""
    itemsize = np.dtype(structure.dtype).itemsize
    n = structure.batch_size if not structure.full_batch else structure.n_samples
    per_sample = sum(fan_in * fan_out + 4 * fan_out for fan_in, fan_out in layer_sizes(structure))
    return max(1, 3 * n * per_sample * itemsize)


def auto_chunk_size(structure: Structure, devices: Sequence[jax.Device] | None = None) -> int:
    """(setting, initialization) pairs per chunk, from the memory of the devices it spreads over."""
    devices = list(devices or jax.devices())
    budget = CPU_CHUNK_BYTES * len(devices)
    if devices[0].platform != "cpu":
        # Only this process's devices can be asked; the others are assumed alike.
        own = [d for d in devices if d.process_index == jax.process_index()] or jax.local_devices()
        stats = own[0].memory_stats() or {}
        limit = stats.get("bytes_limit")
        if limit:
            budget = int(limit * ACCELERATOR_MEMORY_SHARE) * len(devices)
    return max(len(devices), budget // bytes_per_run(structure))


def plan_chunks(n_settings: int, n_inits: int, chunk_size: int, n_devices: int = 1) -> list[Chunk]:
    """Split ``n_settings x n_inits`` pairs into chunks of equal shape (the last ones padded).

    A chunk holds ``s`` settings by ``c`` initializations with ``s * c <= chunk_size`` (at least one
    of each, and ``c`` a multiple of ``n_devices`` so a chunk shards evenly). Both are balanced:
    2000 initializations with room for 1985 make two chunks of 1000, not 1985 plus a padded 15.
    """
    init_room = max(1, min(n_inits, chunk_size))
    init_blocks = math.ceil(n_inits / init_room)
    inits_per_chunk = math.ceil(math.ceil(n_inits / init_blocks) / n_devices) * n_devices
    setting_room = max(1, min(n_settings, chunk_size // inits_per_chunk))
    setting_blocks = math.ceil(n_settings / setting_room)
    settings_per_chunk = math.ceil(n_settings / setting_blocks)
    chunks = []
    for first_setting in range(0, n_settings, settings_per_chunk):
        real_settings = min(settings_per_chunk, n_settings - first_setting)
        slots = np.arange(first_setting, first_setting + settings_per_chunk)
        slots = np.minimum(slots, n_settings - 1)  # pad by repeating the last setting
        for first_init in range(0, n_inits, inits_per_chunk):
            real_inits = min(inits_per_chunk, n_inits - first_init)
            indices = np.arange(first_init, first_init + inits_per_chunk)
            indices = np.minimum(indices, n_inits - 1)  # pad by repeating the last index
            chunks.append(Chunk(slots, indices.astype(np.int32), real_settings, real_inits))
    return chunks


def _stack_numerics(settings: Sequence[Setting], dtype: str):
    fields = zip(*(s.numeric for s in settings), strict=True)
    return type(settings[0].numeric)(*(np.asarray(f, dtype=dtype) for f in fields))


def run_group(
    structure: Structure,
    settings: Sequence[Setting],
    n_inits: int,
    seed: int,
    chunk_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    on_chunk: Callable[[int, float], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Train ``n_inits`` initializations of each setting of one structural group.

    Args:
      structure: the group's shared structure.
      settings: the group's settings (their numeric parts are vmapped).
      n_inits: initializations per setting; seed: the study seed.
      chunk_size: (setting, initialization) pairs per compiled call; None = automatic.
      devices: devices to shard the initializations over (default: all devices, those of
        every process in a multi-process run, where every process must make the same call).
      on_chunk: called after each chunk with the number of real pairs it held and the seconds
        spent compiling for it (progress).

    Returns:
      ``(runs, timings)``: a row per setting and initialization, in setting then index order,
      and ``{"compile_s": ..., "run_s": ...}``.
    """
    devices = list(devices or jax.devices())
    # Every process must run chunks of the same shape: the size that fits the smallest host.
    chunk_size = chunk_size or distributed.smallest(auto_chunk_size(structure, devices))
    numerics = _stack_numerics(settings, structure.dtype)
    setting_ids = np.asarray([s.setting_id for s in settings], dtype=np.int32)
    csv = csv_data(structure)
    seed_array = np.uint32(seed % 2**32)

    compile_s = 0.0
    results: list[tuple[Chunk, Result]] = []
    start = time.perf_counter()
    for chunk in plan_chunks(len(settings), n_inits, chunk_size, len(devices)):
        args = (
            seed_array,
            jax.tree.map(lambda a, slots=chunk.setting_slots: a[slots], numerics),
            setting_ids[chunk.setting_slots],
            distributed.shard(chunk.init_indices, devices),
            csv,
        )
        metrics, chunk_compile_s = _run_chunk(structure, args)
        compile_s += chunk_compile_s
        results.append((chunk, metrics))
        if on_chunk is not None:
            on_chunk(chunk.n_settings * chunk.n_inits, chunk_compile_s)
    run_s = time.perf_counter() - start - compile_s
    return _to_frame(structure, settings, n_inits, results), {
        "compile_s": compile_s,
        "run_s": run_s,
    }


def _run_chunk(structure: Structure, args) -> tuple[Result, float]:
    """Draw and train one chunk: ``(its Result on the host, seconds spent compiling)``."""
    t0 = time.perf_counter()
    draw = compiled(start_structure(structure), args, make_start)
    compile_s = time.perf_counter() - t0
    data, drawn = draw(*args)
    t0 = time.perf_counter()
    train = compiled(structure, (args[1], data, drawn), make_run)
    compile_s += time.perf_counter() - t0
    return distributed.fetch(train(args[1], data, drawn)), compile_s


_EXECUTABLES: dict = {}


def compiled(structure: Structure, args, make: Callable = make_run) -> Callable:
    """The compiled program ``make(structure)`` for the shapes and placement of ``args``.

    Compiled ahead of time (so compile time is measured apart from run time) and kept: a
    structure compiles once per chunk shape, whatever numeric values later calls carry.
    ``make`` is :func:`study.train.make_start` (the start, shared by the structures that draw
    the same data and parameters) or :func:`study.train.make_run` (the training).
    """
    signature = (
        make.__name__,
        structure,
        tuple(
            (np.shape(leaf), str(leaf.dtype), str(getattr(leaf, "sharding", None)))
            for leaf in jax.tree.leaves(args)
        ),
    )
    if signature not in _EXECUTABLES:
        _EXECUTABLES[signature] = make(structure).lower(*args).compile()
    return _EXECUTABLES[signature]


def compile_cache_dir() -> str:
    """Where compiled programs are kept: ``JAX_COMPILATION_CACHE_DIR`` when set, else ``jax/``
    in study's cache folder (:func:`study.host.cache_root`: ``STUDY_CACHE_DIR``, else
    ``${XDG_CACHE_HOME:-~/.cache}/study``)."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    return str(cache_root() / "jax")


def use_cpu_devices(count: int | None = None) -> int | None:
    """Show the host's CPU to JAX as ``count`` devices, over which :func:`run_group` shards each
    chunk's initializations (the same bits for any count); None: one per CPU core this process
    may use, unless ``XLA_FLAGS`` or ``JAX_NUM_CPU_DEVICES`` already set a count. On the
    project's 2-core machine two devices trained 0-20% faster than one (noisy;
    ``docs/performance.md``). Takes effect only before JAX starts its backend: afterwards None
    leaves JAX as it is and a count is refused. Returns the count set, or None.
    """
    if count is not None and count <= 0:
        raise ConfigError(f"--cpu-devices {count}: must be a positive integer")
    count_set_by_user = "xla_force_host_platform_device_count" in os.environ.get(
        "XLA_FLAGS", ""
    ) or bool(os.environ.get("JAX_NUM_CPU_DEVICES"))
    if count is None and count_set_by_user:
        return None
    try:
        jax.config.update("jax_num_cpu_devices", count or usable_cpus())
    except RuntimeError as err:  # the backend already runs
        if count is None:
            return None
        raise ConfigError(f"--cpu-devices {count}: {err}") from None
    return jax.config.jax_num_cpu_devices


def use_compile_cache(enabled: bool = True) -> str | None:
    """Keep compiled programs on disk, so that a later process loads them instead of compiling.

    JAX's persistent compilation cache, in :func:`compile_cache_dir`; it stores the executable
    XLA built, so a program loaded from it computes the same bits. Takes effect only before the
    process's first compile. Returns the folder, or None when ``enabled`` is False (then the
    cache is off, even where JAX's own configuration turned it on).
    """
    if not enabled:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    path = compile_cache_dir()
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_S)
    return path


def _assemble(results, n_settings: int, n_inits: int) -> dict[str, np.ndarray]:
    """Every field of the chunks' named tuples, ``[n_settings * n_inits, ...]`` in row order."""
    columns: dict[str, np.ndarray] = {}
    for field in results[0][1]._fields:
        sample = getattr(results[0][1], field)
        full = np.empty((n_settings, n_inits, *sample.shape[2:]), dtype=sample.dtype)
        for chunk, values in results:
            slots = chunk.setting_slots[: chunk.n_settings]
            indices = chunk.init_indices[: chunk.n_inits]
            value = np.asarray(getattr(values, field))[: chunk.n_settings, : chunk.n_inits]
            full[slots[:, None], indices[None, :]] = value
        columns[field] = full.reshape(n_settings * n_inits, *sample.shape[2:])
    return columns


def _curve_columns(structure: Structure, curves: dict[str, np.ndarray]) -> dict[str, list]:
    """``curve_<name>`` columns: per row, the curve over the logged steps as an array (stored as
    a list column; :func:`study.results.write_results` turns them into ``curves.parquet``); none
    without ``train.curves`` (then the run recorded curves over zero checks)."""
    columns: dict[str, list] = {}
    if not structure.curves:
        return columns
    for field, values in curves.items():
        if values.ndim == 2:  # [rows, checks]
            columns[f"curve_{field}"] = list(values)
        else:  # [rows, checks, layers]
            for layer in range(structure.depth):
                columns[f"curve_{field}_l{layer + 1}"] = list(values[:, :, layer])
    return columns


def _to_frame(structure, settings, n_inits, results) -> pd.DataFrame:
    """Assemble per-chunk results into one table: a row per (setting, initialization)."""
    n_settings = len(settings)
    columns = _assemble([(chunk, r.metrics) for chunk, r in results], n_settings, n_inits)
    curves = _assemble([(chunk, r.curves) for chunk, r in results], n_settings, n_inits)

    frame: dict[str, Any] = {}
    for name, _ in settings[0].values:
        frame[name] = np.repeat([_table_value(s.as_dict[name]) for s in settings], n_inits)
    frame["init"] = np.tile(np.arange(n_inits, dtype=np.int64), n_settings)
    for field in Metrics._fields:
        if field in PER_LAYER:
            for layer in range(structure.depth):
                frame[f"{field}_l{layer + 1}"] = columns[field][:, layer]
        else:
            frame[field] = columns[field]
    frame.update(_curve_columns(structure, curves))
    table = pd.DataFrame(frame)
    for name in ("final_loss", "initial_loss", "final_accuracy", "predicted_positive"):
        table[name] = table[name].astype(np.float64)
    return table


def _table_value(value):
    """A setting value as it goes into a table (lists of column names as text)."""
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    return value


def simulate(
    settings: Setting | Sequence[Setting] | Study,
    n_inits: int | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
) -> pd.DataFrame:
    """Train initializations of one setting or many; a row per setting and initialization.

    Example::

        import study
        runs = study.simulate(study.make_setting(data_offset=2.0), n_inits=4000)
        runs["dead_init"].mean()   # about 1/3 on this cloud (theory.p_dead_relu_2d)

    With curves (a stream, or ``train.curves``), ``curve_*`` columns hold each initialization's
    curve over the logged steps as an array; ``study.results.split_curves(runs)`` turns them into
    the long table of ``curves.parquet``.

    Args:
      settings: a Setting, a list of them, or a Study (its n_inits and seed are the defaults).
      n_inits: initializations per setting (default: the study's, else 1000).
      seed: study seed (default: the study's, else 0).
      chunk_size: (setting, initialization) pairs per compiled call; None = automatic.
    """
    if isinstance(settings, Study):
        n_inits = settings.n_inits if n_inits is None else n_inits
        seed = settings.seed if seed is None else seed
        settings = settings.settings
    elif isinstance(settings, Setting):
        settings = [settings]
    n_inits = 1000 if n_inits is None else n_inits
    seed = 0 if seed is None else seed
    enable_float64_if_needed(settings)
    frames = [
        run_group(structure, group, n_inits, seed, chunk_size)[0]
        for structure, group in group_by_structure(settings).items()
    ]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def enable_float64_if_needed(settings: Sequence[Setting]) -> None:
    """Turn on JAX's 64-bit mode when a setting asks for float64 (it is off by default)."""
    if any(s.structure.dtype == "float64" for s in settings):
        jax.config.update("jax_enable_x64", True)
