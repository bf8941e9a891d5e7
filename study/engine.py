"""Run settings through the compiled engine in bounded chunks and collect a tidy table.

This is the layer between the compiled programs of :mod:`study.train` (the start, shared by the
structures that draw the same data and parameters, and the training) and pandas: it stacks the
numeric parts of a structural group, splits the (setting, initialization) pairs into fixed-size
chunks (padded, so every chunk has the same shape and the group compiles once), places each chunk
on the devices (sharded along initializations: over every process's devices in a multi-process
run, see :mod:`study.distributed`), and turns the results into two tables: the runs (a row per
setting and initialization) and, when the group records curves, the curves (a row per setting,
initialization and logged step; the columns of ``curves.parquet``). No cell holds an array.

The compiled programs belong to an :class:`Engine`, passed down by the caller (one per process
by default): it compiles each once per chunk shape and keeps a bounded number. A float64 group
runs in JAX's 64-bit mode, scoped to the group (:func:`study.runtime.precision`).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import pandas as pd

from study import distributed, runtime
from study.config import (
    SETTING_KEYS,
    VARIANT_COLUMN,
    Setting,
    Structure,
    Study,
    group_by_structure,
)
from study.data import csv_data
from study.model import layer_sizes
from study.train import Metrics, Result, draw_ids_of, make_run, make_start, start_structure

# Bytes of working memory the automatic chunk size aims at per chunk on CPU; on an accelerator
# the budget is a share of the device's memory.
CPU_CHUNK_BYTES = 64 * 2**20
ACCELERATOR_MEMORY_SHARE = 0.25

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
    "replaced_units",
)


class GroupResult(NamedTuple):
    """What :func:`run_group` returns for one structural group.

    runs: a row per setting and initialization, in setting then index order: ``variant`` (only
      when the settings belong to variants), the setting columns, ``init``, the metrics (per
      hidden layer ``K`` as ``<metric>_lK``); with ``train.plasticity_metrics``, the
      :class:`study.plasticity.Plasticity` fields at the end (``effective_rank_end_lK``, ...,
      ``grad_norm_end``); with ``train.probe_steps``, ``probe_loss_drop``,
      ``probe_fresh_loss_drop``, ``probe_ratio``, ``probe_final_loss`` and
      ``probe_fresh_final_loss`` (:mod:`study.probe`).
    curves: a row per setting, initialization and logged step, in the runs' order then step
      order: the runs' key columns (``variant``, the setting columns, ``init``), ``step``,
      ``error`` and per hidden layer ``K``
      ``dead_units_lK``, ``inactive_units_lK``, ``dormant_units_lK``,
      ``rarely_active_units_lK``, ``zero_share_lK`` (and with ``train.plasticity_metrics``
      ``effective_rank_lK``, ..., ``grad_norm``); None when the group records no curves
      (``train.curves`` off, and not a stream).
    timings: ``{"compile_s": ..., "run_s": ...}``, seconds spent compiling and running.
    """

    runs: pd.DataFrame
    curves: pd.DataFrame | None
    timings: dict[str, float]


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
    engine: Engine | None = None,
    pairing: str = "shared",
) -> GroupResult:
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
      engine: the Engine whose compiled programs to use and keep (None: the process's own).
      pairing: ``"shared"``, initialization i of every setting draws the same numbers;
        ``"independent"``, each setting its own (:func:`study.train.draw_ids_of`).

    Runs in JAX's 64-bit mode when the structure is float64 (:func:`study.runtime.precision`).

    Returns:
      a :class:`GroupResult`: the runs, the curves (None without curves) and the timings.
    """
    engine = default_engine() if engine is None else engine
    devices = list(devices or jax.devices())
    # Every process must run chunks of the same shape: the size that fits the smallest host.
    chunk_size = chunk_size or distributed.smallest(auto_chunk_size(structure, devices))
    numerics = _stack_numerics(settings, structure.dtype)
    draw_ids = draw_ids_of([s.setting_id for s in settings], pairing)
    csv = csv_data(structure)
    seed_array = np.uint32(seed % 2**32)

    compile_s = 0.0
    results: list[tuple[Chunk, Result]] = []
    start = time.perf_counter()
    with runtime.precision(structure.dtype):  # a float64 group computes in float64
        for chunk in plan_chunks(len(settings), n_inits, chunk_size, len(devices)):
            args = (
                seed_array,
                jax.tree.map(lambda a, slots=chunk.setting_slots: a[slots], numerics),
                draw_ids[chunk.setting_slots],
                distributed.shard(chunk.init_indices, devices),
                csv,
            )
            result, chunk_compile_s = _run_chunk(engine, structure, args)
            compile_s += chunk_compile_s
            results.append((chunk, result))
            if on_chunk is not None:
                on_chunk(chunk.n_settings * chunk.n_inits, chunk_compile_s)
    timings = {"compile_s": compile_s, "run_s": time.perf_counter() - start - compile_s}
    return GroupResult(*_tables(structure, settings, n_inits, results), timings)


def _tables(
    structure: Structure,
    settings: Sequence[Setting],
    n_inits: int,
    results: list[tuple[Chunk, Result]],
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The chunks' results as the group's runs table and curves table (None without curves)."""
    n_settings = len(settings)
    metrics = _assemble([(chunk, r.metrics) for chunk, r in results], n_settings, n_inits)
    runs = _runs_table(structure, settings, n_inits, metrics)
    measured = structure.plasticity_metrics != "none"
    if measured:  # at the end: <metric>_end_lK, grad_norm_end
        ends = _assemble([(chunk, r.plasticity_end) for chunk, r in results], n_settings, n_inits)
        runs = runs.assign(**_per_layer_columns(ends, suffix="_end"))
    if structure.probe_steps:  # probe_loss_drop, probe_fresh_loss_drop, probe_ratio, ...
        probes = _assemble([(chunk, r.probe) for chunk, r in results], n_settings, n_inits)
        runs = runs.assign(**{f"probe_{name}": value for name, value in probes.items()})
    if not structure.curves:  # (the run recorded curves over zero checks)
        return runs, None
    points = _assemble([(chunk, r.curves) for chunk, r in results], n_settings, n_inits)
    if measured:
        points |= _assemble(
            [(chunk, r.plasticity_curves) for chunk, r in results], n_settings, n_inits
        )
    return runs, _curves_table(structure, runs, points)


def _per_layer_columns(values: dict[str, np.ndarray], suffix: str) -> dict[str, np.ndarray]:
    """Columns from assembled values ``[rows]`` (``name + suffix``) or ``[rows, layers]``
    (``name + suffix + "_lK"``, K from 1; none for a field measured on no layer)."""
    columns = {}
    for field, value in values.items():
        if value.ndim == 1:
            columns[field + suffix] = value
        for layer in range(value.shape[1] if value.ndim == 2 else 0):
            columns[f"{field}{suffix}_l{layer + 1}"] = value[:, layer]
    return columns


def _run_chunk(engine: Engine, structure: Structure, args) -> tuple[Result, float]:
    """Draw and train one chunk: ``(its Result on the host, seconds spent compiling)``."""
    t0 = time.perf_counter()
    draw = engine.compiled(start_structure(structure), args, make_start)
    compile_s = time.perf_counter() - t0
    data, drawn = draw(*args)
    t0 = time.perf_counter()
    train = engine.compiled(structure, (args[1], data, drawn), make_run)
    compile_s += time.perf_counter() - t0
    return distributed.fetch(train(args[1], data, drawn)), compile_s


# Compiled programs an Engine keeps: a study's groups take two each (start and training) per
# chunk shape, so a few dozen groups reuse theirs; each executable holds only code, no data.
MAX_PROGRAMS = 64


class Engine:
    """The compiled programs of a sequence of runs: one per program, structure and chunk shape.

    Programs are compiled ahead of time (so compile time is measured apart from run time) and
    kept, so a structure compiles once per chunk shape whatever numeric values later calls
    carry; the ``max_programs`` most recently used are kept. Pass one Engine to every call
    that should share programs (:func:`run_group`, :func:`simulate`, the runner); ``None``
    there is the process's default one (:func:`default_engine`). ``compiles`` counts the
    programs this Engine compiled (or loaded from JAX's persistent cache).
    """

    def __init__(self, max_programs: int = MAX_PROGRAMS):
        self.max_programs = max_programs
        self.compiles = 0
        self._executables: OrderedDict[tuple, Callable] = OrderedDict()

    def __len__(self) -> int:
        """The programs kept now."""
        return len(self._executables)

    def compiled(self, structure: Structure, args: tuple[Any, ...], make: Callable) -> Callable:
        """The compiled program ``make(structure)`` for the shapes and placement of ``args``.

        ``make`` is :func:`study.train.make_start` (the start, shared by the structures that
        draw the same data and parameters) or :func:`study.train.make_run` (the training).
        """
        signature = (
            make.__name__,
            structure,
            runtime.setting("jax_enable_x64"),  # a program runs in the mode it was compiled in
            tuple(
                (np.shape(leaf), str(leaf.dtype), str(getattr(leaf, "sharding", None)))
                for leaf in jax.tree.leaves(args)
            ),
        )
        if signature in self._executables:
            self._executables.move_to_end(signature)
            return self._executables[signature]
        executable = make(structure).lower(*args).compile()
        self.compiles += 1
        self._executables[signature] = executable
        if len(self._executables) > self.max_programs:
            self._executables.popitem(last=False)
        return executable


_DEFAULT_ENGINE = Engine()


def default_engine() -> Engine:
    """The Engine of the calls that name none: one per process, shared by all of them."""
    return _DEFAULT_ENGINE


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


def _runs_table(
    structure: Structure,
    settings: Sequence[Setting],
    n_inits: int,
    metrics: dict[str, np.ndarray],
) -> pd.DataFrame:
    """The runs table from the assembled metrics: a row per (setting, initialization); its
    first column is the variant's name when the study has variants."""
    frame: dict[str, Any] = {}
    if settings[0].variant:
        frame[VARIANT_COLUMN] = np.repeat([s.variant for s in settings], n_inits)
    for name, _ in settings[0].values:
        frame[name] = np.repeat([_table_value(s.as_dict[name]) for s in settings], n_inits)
    frame["init"] = np.tile(np.arange(n_inits, dtype=np.int64), len(settings))
    for field in Metrics._fields:
        if field in PER_LAYER:
            for layer in range(structure.depth):
                frame[f"{field}_l{layer + 1}"] = metrics[field][:, layer]
        else:
            frame[field] = metrics[field]
    table = pd.DataFrame(frame)
    for name in ("final_loss", "initial_loss", "final_accuracy", "predicted_positive"):
        table[name] = table[name].astype(np.float64)
    return table


def _curves_table(
    structure: Structure, runs: pd.DataFrame, points: dict[str, np.ndarray]
) -> pd.DataFrame:
    """The long curves table: each row of ``runs`` repeated once per logged step, with its
    curves' values at that step (``points``: the :class:`study.train.Curves` fields,
    ``[rows, checks]`` or ``[rows, checks, layers]``)."""
    n_checks = points["step"].shape[1]
    frame = {name: np.repeat(runs[name].to_numpy(), n_checks) for name in _key_columns(runs)}
    for field, values in points.items():
        if values.ndim == 2:  # [rows, checks]
            frame[field] = values.reshape(-1)
        else:  # [rows, checks, layers] (layers = 0: a metric left out)
            for layer in range(values.shape[2]):
                frame[f"{field}_l{layer + 1}"] = values[:, :, layer].reshape(-1)
    return pd.DataFrame(frame)


def _key_columns(table: pd.DataFrame) -> list[str]:
    """The columns that say which run a row is of: the variant (when there are variants), the
    settings' (in SCHEMA order), ``init``."""
    variant = [VARIANT_COLUMN] if VARIANT_COLUMN in table else []
    return variant + [name for name in SETTING_KEYS if name in table] + ["init"]


def concat_curves(tables: Sequence[pd.DataFrame | None]) -> pd.DataFrame | None:
    """One curves table from several (groups', or blocks of settings'), rows in the order given.

    Columns come in the order they first appear. Groups may differ in their columns (a
    shallower network has fewer layers): a table's rows are NaN in a column it lacks, and that
    column is then float64. A None (a group without curves) adds no rows, but counts as a table
    that lacks every curve column, so each of them is float64 (as ``curves.parquet`` has always
    had it for a study that mixes groups with and without curves). None when no table has curves.
    """
    present = [table for table in tables if table is not None]
    if not present:
        return None
    keys = _key_columns(present[0])
    names = dict.fromkeys(name for table in present for name in table.columns if name not in keys)
    frame = {name: np.concatenate([table[name].to_numpy() for table in present]) for name in keys}
    for name in names:
        frame[name] = np.concatenate(
            [
                table[name].to_numpy()
                if table is not None and name in table
                else np.full(0 if table is None else len(table), np.nan)
                for table in tables
            ]
        )
    return pd.DataFrame(frame)


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
    engine: Engine | None = None,
    pairing: str | None = None,
) -> pd.DataFrame:
    """Train initializations of one setting or many; a row per setting and initialization.

    Example::

        import study
        runs = study.simulate(study.make_setting(data_offset=2.0), n_inits=4000)
        runs["dead_init"].mean()   # about 1/3 on this cloud (theory.p_dead_relu_2d)

    The runs only; :func:`simulate_curves` returns the curves (a stream, or ``train.curves``)
    beside them.

    Args:
      settings: a Setting, a list of them, or a Study (its n_inits and seed are the defaults).
      n_inits: initializations per setting (default: the study's, else 1000).
      seed: study seed (default: the study's, else 0).
      chunk_size: (setting, initialization) pairs per compiled call; None = automatic.
      engine: the Engine whose compiled programs to use and keep (None: the process's own).
      pairing: ``"shared"`` (initialization i of every setting draws the same numbers) or
        ``"independent"`` (each setting its own); default: the study's, else ``"shared"``.

    A float64 setting's group runs in JAX's 64-bit mode, every other group with it off
    (:func:`study.runtime.precision`).
    """
    return _simulate(settings, n_inits, seed, chunk_size, engine, pairing)[0]


def simulate_curves(
    settings: Setting | Sequence[Setting] | Study,
    n_inits: int | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
    engine: Engine | None = None,
    pairing: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Train as :func:`simulate` does (same arguments); ``(runs, curves)``.

    Example::

        setting = study.make_setting(data_kind="slowly_changing", data_dim=20)
        runs, curves = study.simulate_curves(setting, n_inits=10)
        curves.groupby("step")["error"].mean()   # the mean online error at each logged step

    ``curves`` is the long table of ``curves.parquet``: a row per setting, initialization and
    logged step (:class:`GroupResult`'s ``curves``, the groups' tables joined by
    :func:`concat_curves`); None when no setting records curves (a stream always does, other
    data with ``train.curves``).
    """
    return _simulate(settings, n_inits, seed, chunk_size, engine, pairing)


def _simulate(
    settings: Setting | Sequence[Setting] | Study,
    n_inits: int | None,
    seed: int | None,
    chunk_size: int | None,
    engine: Engine | None,
    pairing: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """:func:`simulate_curves`: every structural group run, its tables joined in group order."""
    if isinstance(settings, Study):
        n_inits = settings.n_inits if n_inits is None else n_inits
        seed = settings.seed if seed is None else seed
        pairing = settings.pairing if pairing is None else pairing
        settings = settings.settings
    elif isinstance(settings, Setting):
        settings = [settings]
    n_inits = 1000 if n_inits is None else n_inits
    seed = 0 if seed is None else seed
    pairing = "shared" if pairing is None else pairing
    groups = [
        run_group(structure, group, n_inits, seed, chunk_size, engine=engine, pairing=pairing)
        for structure, group in group_by_structure(settings).items()
    ]
    runs = [group.runs for group in groups]
    table = pd.concat(runs, ignore_index=True) if len(runs) > 1 else runs[0]
    return table, concat_curves([group.curves for group in groups])
