"""``study run``: a sweep of settings from one config into a results folder.

The study's settings are grouped by structure; each group is one compiled program
(:func:`study.engine.run_group`), run in bounded chunks. A finished group is written at once to
``DIR/.partial/`` (atomically), so an interrupted run, rerun with the same command, skips the
groups it finished. When every group is done, the runner writes ``runs.parquet`` and, with
curves, ``curves.parquet`` (both in grid order), ``summary.csv``
(:func:`study.analysis.summarize`), ``manifest.json`` and the figures
(:func:`study.plots.plot_results`). See :mod:`study.results` for the folder's layout and lock.

In a multi-process run (:mod:`study.distributed`) every process computes every group, sharded
over all global devices; process 0 alone holds the lock, decides which groups are already done,
and writes the folder; the others write nothing to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from study import distributed, results, runtime
from study.config import SCHEMA, STREAMS, Setting, Structure, Study, load_study
from study.errors import ConfigError
from study.progress import make_progress

if TYPE_CHECKING:  # the engine imports JAX: only when a run computes
    from study.engine import Engine

RESULTS_ROOT = Path("results")
NAME_MAX = 255  # bytes in one folder name, on every common file system
_VERSIONED = ("study", "jax", "jaxlib", "optax", "numpy", "pandas", "pyarrow", "scipy")


# --------------------------------------------------------------------------------------------
# What identifies a run, and a group within it.
# --------------------------------------------------------------------------------------------


def identity(study: Study) -> dict:
    """What a results folder's contents depend on: the resolved config and its data files."""
    data_files = sorted({s.structure.csv_path for s in study.settings if s.structure.csv_path})
    return {
        "config": study.config,
        "data_files": {path: results.file_digest(path) for path in data_files},
    }


def group_key(
    structure: Structure,
    settings: Sequence[Setting],
    n_inits: int,
    seed: int,
    pairing: str = "shared",
) -> str:
    """A short hash naming one group's results (a different group never shares it).

    The variants' names count only when there are variants, and the pairing only when it is
    not independent, so groups of runs from before either existed keep their hash (an
    unfinished run of then, resumed with ``pairing = "independent"``, finds what it finished).
    """
    content = {
        "format": results.FORMAT_VERSION,
        "structure": dataclasses.asdict(structure),
        "settings": [s.values for s in settings],
        "n_inits": n_inits,
        "seed": seed,
    }
    if any(s.variant for s in settings):  # the runs table names each row's variant
        content["variants"] = [s.variant for s in settings]
    if pairing != "independent":
        content["pairing"] = pairing
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def group_label(structure: Structure, axes: Sequence[str], settings: Sequence[Setting] = ()) -> str:
    """The structural sweep values that tell this group apart, e.g. ``depth=2 width=4``, in
    SCHEMA order (every structural key of ``axes``), then the variants of its ``settings``
    (``variant=baseline,slow``); the activation when neither says anything."""
    shown = [
        f"{key.name.partition('.')[2]}={getattr(structure, key.field)}"
        for key in SCHEMA
        if key.field and key.structural and key.name in axes
    ]
    variants = dict.fromkeys(s.variant for s in settings if s.variant)
    if variants:
        shown.append(f"variant={','.join(variants)}")
    return " ".join(shown) or structure.activation


# --------------------------------------------------------------------------------------------
# Running a study into a folder.
# --------------------------------------------------------------------------------------------


def _manifest(study: Study, run_identity: dict, status: str, **extra) -> results.Manifest:
    import jax

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return results.Manifest(
        status=status,
        name=study.name,
        **run_identity,
        axes=tuple(study.axes),
        versions=versions,
        backend=jax.default_backend(),
        devices=tuple(
            {"id": d.id, "platform": d.platform, "kind": d.device_kind} for d in jax.devices()
        ),
        process_count=jax.process_count(),
        platform=platform.platform(),
        **extra,
    )


def run_study(
    study: Study,
    folder: str | Path,
    *,
    chunk_size: int | None = None,
    force: bool = False,
    quiet: bool = True,
    figures: Sequence[str] | bool = ("png",),
    figure_cache: bool = True,
    engine: Engine | None = None,
) -> Path:
    """Run every setting of ``study`` into ``folder`` (resuming finished groups); returns it.

    A folder that already holds this study's complete results is left as it is (its figures
    drawn if any is missing); ``force`` recomputes. Raises FolderError when another run holds the
    folder or it holds something else than this config's results (unless ``force``), and
    ConfigError for bad input or an unusable folder, before anything is written. ``figures``:
    the formats to draw (``("png",)``, ``("pdf",)``, ``()`` for none; True/False as png/none);
    ``figure_cache``: copy figures drawn before for the same inputs from the figure cache
    (:func:`study.plots.plot_results`' ``cache``); ``engine``: the
    :class:`study.engine.Engine` that compiles and keeps the groups' programs (None: the
    process's own). A float64 group runs in JAX's 64-bit mode, scoped to the group.
    """
    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"--chunk-size {chunk_size}: must be a positive integer")
    folder = Path(folder)
    check_size(study)
    run_identity = identity(study)
    if not distributed.is_writer():
        _follow(study, chunk_size, engine)
        return folder
    with contextlib.ExitStack() as held:

        def claim() -> list[int]:
            results.open_folder(folder)
            held.enter_context(results.locked(folder))
            results.prepare(folder, run_identity, force)
            return [int(results.is_complete(folder))]

        (up_to_date,) = distributed.from_writer(claim, 1, "take the results folder")
        if up_to_date:
            results.remove_partial(folder)  # left by a run killed just after its tables
            if not quiet:
                print(f"study run: {folder} is up to date; --force recomputes it", file=sys.stderr)
        if not up_to_date:
            _compute(study, folder, run_identity, chunk_size, quiet, engine)
        formats = ("png",) if figures is True else tuple(figures or ())
        if formats:
            finished = results.ResultsFolder.open(folder)
            if not _figures_drawn(finished, formats):
                from study import plots

                plots.plot_results(finished, formats=formats, cache=figure_cache)
    return folder


# A run is refused when even at these rates (initialization-steps per second and device, far
# above what this project measured: 2.2 M on a CPU core pair for the smallest network) it would
# take longer than MAX_DAYS, or when its table would not fit in the machine's memory.
OPTIMISTIC_RATE = {"cpu": 1e7, "accelerator": 1e9}
MAX_DAYS = 7
BYTES_PER_CELL = 16  # a table cell in memory, with pandas' and pyarrow's copies


def check_size(study: Study) -> None:
    """Refuse up front a study whose time or memory is beyond reason, with the estimate."""
    import jax

    rows = len(study.settings) * study.n_inits
    init_steps = sum(s.structure.steps for s in study.settings) * study.n_inits
    devices = jax.devices()
    kind = "cpu" if devices[0].platform == "cpu" else "accelerator"
    days = init_steps / (OPTIMISTIC_RATE[kind] * len(devices)) / 86400
    columns = (
        len(study.settings[0].values) + 16 + 7 * max(s.structure.depth for s in study.settings)
    )
    table_gb = rows * columns * BYTES_PER_CELL / 1e9
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    size = (
        f"{len(study.settings)} settings x n_inits = {study.n_inits}: {init_steps:.3g} init-steps"
    )
    if days > MAX_DAYS:
        raise ConfigError(
            f"{size} would take at least {days:.3g} days even at {OPTIMISTIC_RATE[kind]:.0e} "
            f"init-steps/s on each of {len(devices)} device(s); lower n_inits or train.steps, or "
            "split the grid into several configs"
        )
    if table_gb > memory_gb:
        raise ConfigError(
            f"{size} need a table of about {table_gb:.3g} GB, more than this machine's "
            f"{memory_gb:.3g} GB of memory; lower n_inits or split the grid into several configs"
        )
    _check_data_memory(study, _device_memory(devices[0], memory_gb * 1e9))


def _device_memory(device, host_bytes: float) -> float:
    """Bytes one device may hold: the machine's memory for a CPU, the accelerator's own."""
    if device.platform == "cpu":
        return host_bytes
    limit = (device.memory_stats() or {}).get("bytes_limit")
    return float(limit) if limit else float("inf")


def _check_data_memory(study: Study, device_bytes: float) -> None:
    """Refuse a setting whose one network cannot be checked on one device: a death check holds
    every training example (a stream's probe) with the activations of every layer, and a
    stream's probe also the target network's, at once; a chunk holds at least one network."""
    import numpy as np

    for setting in study.settings:
        structure = setting.structure
        is_stream = structure.data_kind in STREAMS
        per_sample = structure.dim + structure.depth * structure.width + 1
        per_sample += structure.teacher_width if is_stream else 0
        per_sample *= np.dtype(structure.dtype).itemsize
        needed = structure.n_samples * per_sample
        if needed > device_bytes:
            name = "data.probe_size" if is_stream else "data.n_samples"
            raise ConfigError(
                f"{name} = {structure.n_samples}: checking one network holds at least "
                f"{needed / 1e9:.3g} GB of examples and activations at once, more than the "
                f"{device_bytes / 1e9:.3g} GB of memory of a device; allowed: at most "
                f"{int(device_bytes // per_sample)}"
            )


def _figures_drawn(folder: results.ResultsFolder, formats: Sequence[str]) -> bool:
    """Whether every figure is there, in every format asked for."""
    if not folder.figures_complete():
        return False
    drawn = {Path(name).suffix for name in folder.manifest.figures or ()}
    return all(f".{suffix}" in drawn for suffix in formats)


def _follow(study: Study, chunk_size: int | None, engine: Engine | None) -> None:
    """A process other than 0: compute the groups process 0 has not finished; write nothing."""
    from study.engine import run_group

    groups = list(study.groups().items())
    (up_to_date,) = distributed.from_writer(None, 1, "take the results folder")
    if up_to_date:
        return
    done = distributed.from_writer(None, len(groups), "read the finished groups")
    for (structure, settings), finished in zip(groups, done, strict=True):
        if not finished:
            run_group(
                structure,
                settings,
                study.n_inits,
                study.seed,
                chunk_size,
                engine=engine,
                pairing=study.pairing,
            )


def _compute(
    study: Study, folder: Path, run_identity: dict, chunk_size, quiet: bool, engine: Engine | None
) -> None:
    """Run the groups not yet on disk, then write the final files (the lock is held)."""
    from study import analysis
    from study.data import setting_inputs

    started = _now()
    groups = list(study.groups().items())
    keys = [
        group_key(structure, s, study.n_inits, study.seed, study.pairing) for structure, s in groups
    ]
    finished: dict[str, results.PartialGroup] = {}

    def finished_groups() -> list[int]:
        results.write_manifest(folder, _manifest(study, run_identity, "running", started=started))
        for (structure, settings), key in zip(groups, keys, strict=True):
            n_rows = len(settings) * study.n_inits
            done = results.load_group(folder, key, n_rows, with_curves=structure.curves)
            if done is not None:
                finished[key] = done
        return [key in finished for key in keys]

    # The other processes of a multi-process run skip the same groups as this one.
    distributed.from_writer(finished_groups, len(groups), "read the finished groups")
    wall = time.perf_counter()
    frames, timings = _run_groups(study, folder, groups, keys, finished, chunk_size, quiet, engine)
    table, curves = _in_grid_order(study, frames)
    inputs = functools.partial(setting_inputs, seed=study.seed)
    summary = analysis.summarize(table, inputs=inputs)
    manifest = _manifest(
        study,
        run_identity,
        "complete",
        started=started,
        finished=_now(),
        n_settings=len(study.settings),
        n_rows=len(table),
        timings=_timing_record(timings, time.perf_counter() - wall),
    )
    results.write_results(folder, table, summary, manifest, curves=curves)
    results.remove_partial(folder)


def _run_groups(
    study: Study, folder: Path, groups, keys, finished, chunk_size, quiet: bool, engine
):
    """Train every group not in ``finished`` (saving each at once); ``(frames, timings)``, a
    frame ``(settings, runs, curves)`` per group (curves None without)."""
    from study.engine import run_group

    total = sum(len(settings) * structure.steps for structure, settings in groups) * study.n_inits
    progress = make_progress(len(study.settings), study.n_inits, len(groups), quiet, total)
    frames, timings = [], []
    try:
        for index, ((structure, settings), key) in enumerate(zip(groups, keys, strict=True)):
            n_rows = len(settings) * study.n_inits
            label = group_label(structure, study.axes, settings)
            done = finished.pop(key, None)
            progress.group(index, label, len(settings), resumed=done is not None)
            if done is None:

                def advance(pairs, compile_s, steps=structure.steps):
                    progress.advance(pairs, steps, compile_s)

                runs, curves, group_timing = run_group(
                    structure,
                    settings,
                    study.n_inits,
                    study.seed,
                    chunk_size,
                    on_chunk=advance,
                    engine=engine,
                    pairing=study.pairing,
                )
                timing = {
                    "group": key,
                    "label": label,
                    "n_settings": len(settings),
                    "compile_s": group_timing["compile_s"],
                    "run_s": group_timing["run_s"],
                    "init_steps_per_s": n_rows * structure.steps / max(group_timing["run_s"], 1e-9),
                }
                results.save_group(folder, key, runs, curves, timing)
            else:
                runs, curves, timing = done
                timing = {**timing, "resumed": True}
                progress.skip(n_rows, structure.steps)
            frames.append((settings, runs, curves))
            timings.append(timing)
    finally:
        progress.close()
    return frames, timings


def _timing_record(timings: list[dict], wall_s: float) -> dict:
    run_s = sum(t.get("run_s", 0.0) for t in timings)
    init_steps = sum(t.get("init_steps_per_s", 0.0) * t.get("run_s", 0.0) for t in timings)
    return {
        "groups": timings,
        "compile_s": sum(t.get("compile_s", 0.0) for t in timings),
        "run_s": run_s,
        "init_steps_per_s": init_steps / run_s if run_s > 0 else None,
        "wall_s": wall_s,
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _in_grid_order(
    study: Study, frames: list[tuple[list[Setting], pd.DataFrame, pd.DataFrame | None]]
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The runs and curves tables from the groups' ones, settings in the config's grid order
    (curves None when no group has them)."""
    from study.engine import concat_curves

    position = {setting: i for i, setting in enumerate(study.settings)}
    blocks = []
    for settings, runs, curves in frames:
        # a setting's rows are consecutive in both tables, as many in each as in every other
        steps = 0 if curves is None else len(curves) // len(settings)
        for j, setting in enumerate(settings):
            rows = runs.iloc[j * study.n_inits : (j + 1) * study.n_inits]
            points = None if curves is None else curves.iloc[j * steps : (j + 1) * steps]
            blocks.append((position[setting], rows, points))
    blocks.sort(key=lambda block: block[0])
    table = pd.concat([rows for _, rows, _ in blocks], ignore_index=True)
    return table, concat_curves([points for _, _, points in blocks])


def default_folder(name: str) -> Path:
    """``results/<name>/`` relative to the current directory; the name must be a plain name."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(
            f"name = {name!r}: must be a plain folder name (no '/', not '.' or '..'), or give --out"
        )
    if len(name.encode()) > NAME_MAX:
        raise ConfigError(
            f"name = {name[:24]!r}...: {len(name.encode())} bytes, longer than the {NAME_MAX} a "
            "folder name may have; shorten it or give --out"
        )
    return RESULTS_ROOT / name


def fingerprint(study: Study, chunk_size: int | None) -> str:
    """What every process of a multi-process run must agree on (paths may differ by host)."""
    config = {k: v for k, v in study.config.items() if k != "data.path"}
    if "variants" in config:  # (a variant may read another data file)
        config["variants"] = {
            name: {k: v for k, v in overrides.items() if k != "data.path"}
            for name, overrides in config["variants"].items()
        }
    data = sorted(
        results.file_digest(s.structure.csv_path) for s in study.settings if s.structure.csv_path
    )
    return json.dumps(
        [config, data, study.n_inits, study.seed, chunk_size], sort_keys=True, default=str
    )


def run_config(
    config: Mapping[str, Any] | str | Path | None = None,
    *,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    n_inits: int | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
    force: bool = False,
    quiet: bool = False,
    figures: Sequence[str] | bool = ("png",),
    compile_cache: bool = True,
    figure_cache: bool = True,
    engine: Engine | None = None,
) -> tuple[Study, Path]:
    """Load a config (as ``study run`` does) and run it; ``(study, results folder)``.

    ``config``: a TOML path, a nested dict in the same layout (a relative ``data.path`` is then
    relative to the current folder) or None, as :func:`study.config.load_study` takes.

    ``compile_cache``: keep compiled programs on disk for later runs
    (:func:`study.runtime.configure`); ``figures``, ``figure_cache``, ``engine``: as for
    :func:`run_study`.

    In a multi-process run (:func:`study.distributed.initialize` called first) every process
    loads the config, all fail together on bad input, and they check that they agree on it.
    """

    def load() -> tuple[Study, Path]:
        study = load_study(config, overrides=overrides, n_inits=n_inits, seed=seed)
        if out is not None and str(out) == "":
            raise ConfigError("--out '': an empty path; give a folder, e.g. results/mine")
        folder = Path(out) if out is not None else default_folder(study.name)
        return study, folder

    runtime.configure(compile_cache=compile_cache)
    study, folder = distributed.all_or_none(load, "load the config")
    distributed.same_everywhere(fingerprint(study, chunk_size), "config, data or options")
    quiet = quiet or not distributed.is_writer()
    run_study(
        study,
        folder,
        chunk_size=chunk_size,
        force=force,
        quiet=quiet,
        figures=figures,
        figure_cache=figure_cache,
        engine=engine,
    )
    return study, folder
