"""``study run``: a sweep of settings from one config into a results folder.

The study's settings are grouped by structure; each group is one compiled program
(:func:`study.engine.run_group`), run in bounded chunks. A finished group is written at once to
``DIR/.partial/`` (atomically), so an interrupted run, rerun with the same command, skips the
groups it finished. When every group is done, the runner writes ``runs.parquet`` (in grid order),
``summary.csv`` (:func:`study.analysis.summarize`), ``manifest.json`` and the figures
(:func:`study.plots.plot_results`). See :mod:`study.results` for the folder's layout and lock.

In a multi-process run (:mod:`study.distributed`) every process computes every group, sharded
over all global devices; process 0 alone holds the lock, decides which groups are already done,
and writes the folder; the others write nothing to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pandas as pd

from study import distributed, results
from study.config import ConfigError, Setting, Structure, Study, load_study

RESULTS_ROOT = Path("results")
_VERSIONED = ("study", "jax", "jaxlib", "optax", "numpy", "pandas", "pyarrow", "scipy")


# --------------------------------------------------------------------------------------------
# Progress: a bar on a terminal, log lines otherwise, nothing with --quiet.
# --------------------------------------------------------------------------------------------


class Progress:
    """Counts (setting, initialization) pairs and initialization-steps; silent by itself."""

    def __init__(self, n_settings: int, n_inits: int, n_groups: int):
        self.n_settings, self.n_inits, self.n_groups = n_settings, n_inits, n_groups
        self.pairs = 0
        self.init_steps = 0
        self.start = time.perf_counter()

    def group(self, index: int, label: str, n_settings: int, resumed: bool) -> None:
        """A group starts (or, ``resumed``, was found finished on disk)."""

    def advance(self, pairs: int, steps: int) -> None:
        self.pairs += pairs
        self.init_steps += pairs * steps

    def close(self) -> None:
        """Called once, at the end or on an error."""

    @property
    def settings_done(self) -> int:
        return self.pairs // self.n_inits

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.init_steps / elapsed if elapsed > 0 else 0.0


class _Bar(Progress):
    """A tqdm bar over initializations, with settings done and initialization-steps per second."""

    def __init__(self, n_settings, n_inits, n_groups):
        super().__init__(n_settings, n_inits, n_groups)
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=n_settings * n_inits, unit="init", unit_scale=True, dynamic_ncols=True
        )

    def group(self, index, label, n_settings, resumed):
        self.bar.set_description(f"group {index + 1}/{self.n_groups} {label}")

    def advance(self, pairs, steps):
        super().advance(pairs, steps)
        self.bar.update(pairs)
        self.bar.set_postfix_str(
            f"settings {self.settings_done}/{self.n_settings}, {_si(self.rate())} init-steps/s"
        )

    def close(self):
        self.bar.close()


class _Lines(Progress):
    """Plain log lines on stderr (not a terminal): one per group, and one per ``every`` s."""

    def __init__(self, n_settings, n_inits, n_groups, every: float = 10.0):
        super().__init__(n_settings, n_inits, n_groups)
        self.every = every
        self.last = time.perf_counter()

    def group(self, index, label, n_settings, resumed):
        state = "already done, skipped" if resumed else "running"
        self._print(f"group {index + 1}/{self.n_groups} ({label}, {n_settings} settings) {state}")

    def advance(self, pairs, steps):
        super().advance(pairs, steps)
        now = time.perf_counter()
        if now - self.last >= self.every or self.pairs == self.n_settings * self.n_inits:
            self.last = now
            total = self.n_settings * self.n_inits
            rate = self.pairs / (now - self.start) if now > self.start else 0.0
            eta = (total - self.pairs) / rate if rate > 0 else math.inf
            self._print(
                f"{self.pairs}/{total} inits ({100 * self.pairs / total:.0f}%), settings "
                f"{self.settings_done}/{self.n_settings}, {_si(self.rate())} init-steps/s, "
                f"ETA {_duration(eta)}"
            )

    @staticmethod
    def _print(text):
        print(f"study run: {text}", file=sys.stderr, flush=True)


def make_progress(n_settings: int, n_inits: int, n_groups: int, quiet: bool) -> Progress:
    """The progress display for this output: a bar on a terminal, log lines otherwise."""
    if quiet:
        return Progress(n_settings, n_inits, n_groups)
    if sys.stderr.isatty():
        return _Bar(n_settings, n_inits, n_groups)
    return _Lines(n_settings, n_inits, n_groups)


def _si(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.0f}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


# --------------------------------------------------------------------------------------------
# What identifies a run, and a group within it.
# --------------------------------------------------------------------------------------------


def resolved_config(study: Study) -> dict:
    """The study's config with ``data.path`` made absolute (as the settings resolved it)."""
    config = dict(study.config)
    resolved = {}
    for setting in study.settings:
        values = setting.as_dict
        if setting.structure.csv_path:
            resolved[values["data.path"]] = setting.structure.csv_path
    if resolved:
        path = config.get("data.path")
        config["data.path"] = (
            [resolved.get(p, p) for p in path] if isinstance(path, list) else resolved.get(path)
        )
    return config


def identity(study: Study) -> dict:
    """What a results folder's contents depend on: the resolved config and its data files."""
    data_files = sorted({s.structure.csv_path for s in study.settings if s.structure.csv_path})
    return {
        "config": resolved_config(study),
        "data_files": {path: results.file_digest(path) for path in data_files},
    }


def group_key(structure: Structure, settings: Sequence[Setting], n_inits: int, seed: int) -> str:
    """A short hash naming one group's results (a different group never shares it)."""
    text = json.dumps(
        {
            "format": results.FORMAT_VERSION,
            "structure": dataclasses.asdict(structure),
            "settings": [s.values for s in settings],
            "n_inits": n_inits,
            "seed": seed,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def group_label(structure: Structure, axes: Sequence[str]) -> str:
    """The structural sweep values that tell this group apart, e.g. ``relu depth=2 width=4``."""
    fields = {
        "model.activation": structure.activation,
        "model.depth": structure.depth,
        "model.width": structure.width,
        "model.init": structure.init,
        "model.bias_init": structure.bias_init,
        "train.optimizer": structure.optimizer,
        "train.steps": structure.steps,
        "train.batch_size": structure.batch_size,
        "data.kind": structure.data_kind,
        "data.n_samples": structure.n_samples,
    }
    shown = [f"{name.split('.')[1]}={value}" for name, value in fields.items() if name in axes]
    return " ".join(shown) or structure.activation


# --------------------------------------------------------------------------------------------
# Running a study into a folder.
# --------------------------------------------------------------------------------------------


def _environment() -> dict:
    import jax

    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "versions": versions,
        "backend": jax.default_backend(),
        "devices": [
            {"id": d.id, "platform": d.platform, "kind": d.device_kind} for d in jax.devices()
        ],
        "process_count": jax.process_count(),
        "platform": platform.platform(),
    }


def _manifest(study: Study, run_identity: dict, status: str, **extra) -> dict:
    return {
        "format_version": results.FORMAT_VERSION,
        "status": status,
        "name": study.name,
        **run_identity,
        "axes": list(study.axes),
        **_environment(),
        **extra,
    }


def run_study(
    study: Study,
    folder: str | Path,
    *,
    chunk_size: int | None = None,
    force: bool = False,
    quiet: bool = True,
    figures: bool = True,
) -> Path:
    """Run every setting of ``study`` into ``folder`` (resuming finished groups); returns it.

    A folder that already holds this study's complete results is left as it is (its figures
    drawn if missing); ``force`` recomputes. Raises study.config.FolderError when another run holds
    the folder or it holds another config's results (unless ``force``), and ConfigError for bad
    input, before anything is written.
    """
    from study.engine import enable_float64_if_needed

    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"--chunk-size {chunk_size}: must be a positive integer")
    folder = Path(folder)
    run_identity = identity(study)
    enable_float64_if_needed(study.settings)
    if not distributed.is_writer():
        _follow(study, chunk_size)
        return folder
    with contextlib.ExitStack() as held:

        def claim() -> list[int]:
            folder.mkdir(parents=True, exist_ok=True)
            held.enter_context(results.locked(folder))
            results.prepare(folder, run_identity, force)
            return [int(_up_to_date(folder))]

        (up_to_date,) = distributed.from_writer(claim, 1, "take the results folder")
        if up_to_date:
            if not quiet:
                print(f"study run: {folder} is up to date; --force recomputes it", file=sys.stderr)
            figures = figures and not (folder / results.FIGURES).exists()
        else:
            _compute(study, folder, run_identity, chunk_size, quiet)
    if figures:
        from study import plots

        plots.plot_results(folder)
    return folder


def _up_to_date(folder: Path) -> bool:
    previous = results.read_manifest(folder, required=False)
    return previous.get("status") == "complete" and (folder / results.RUNS).exists()


def _follow(study: Study, chunk_size: int | None) -> None:
    """A process other than 0: compute the groups process 0 has not finished; write nothing."""
    from study.engine import run_group

    groups = list(study.groups().items())
    (up_to_date,) = distributed.from_writer(None, 1, "take the results folder")
    if up_to_date:
        return
    done = distributed.from_writer(None, len(groups), "read the finished groups")
    for (structure, settings), finished in zip(groups, done, strict=True):
        if not finished:
            run_group(structure, settings, study.n_inits, study.seed, chunk_size)


def _compute(study: Study, folder: Path, run_identity: dict, chunk_size, quiet: bool) -> None:
    """Run the groups not yet on disk, then write the final files (the lock is held)."""
    from study import analysis
    from study.engine import run_group

    started = _now()
    groups = list(study.groups().items())
    keys = [group_key(structure, s, study.n_inits, study.seed) for structure, s in groups]

    finished: dict[str, tuple[pd.DataFrame, dict]] = {}

    def finished_groups() -> list[int]:
        results.write_json(
            folder / results.MANIFEST, _manifest(study, run_identity, "running", started=started)
        )
        for (_, settings), key in zip(groups, keys, strict=True):
            done = results.load_group(folder, key, len(settings) * study.n_inits)
            if done is not None:
                finished[key] = done
        return [key in finished for key in keys]

    # The other processes of a multi-process run skip the same groups as this one.
    distributed.from_writer(finished_groups, len(groups), "read the finished groups")
    progress = make_progress(len(study.settings), study.n_inits, len(groups), quiet)
    frames, timings = [], []
    wall = time.perf_counter()
    try:
        for index, (structure, settings) in enumerate(groups):
            key = keys[index]
            n_rows = len(settings) * study.n_inits
            label = group_label(structure, study.axes)
            done = finished.pop(key, None)
            progress.group(index, label, len(settings), resumed=done is not None)
            if done is None:
                runs, timing = run_group(
                    structure,
                    settings,
                    study.n_inits,
                    study.seed,
                    chunk_size,
                    on_chunk=lambda pairs, steps=structure.steps: progress.advance(pairs, steps),
                )
                timing = {
                    "group": key,
                    "label": label,
                    "n_settings": len(settings),
                    "compile_s": timing["compile_s"],
                    "run_s": timing["run_s"],
                    "init_steps_per_s": n_rows * structure.steps / max(timing["run_s"], 1e-9),
                }
                results.save_group(folder, key, runs, timing)
            else:
                runs, timing = done
                timing = {**timing, "resumed": True}
                progress.advance(n_rows, structure.steps)
            frames.append((settings, runs))
            timings.append(timing)
    finally:
        progress.close()

    table = _in_grid_order(study, frames)
    results.write_parquet(folder / results.RUNS, table)
    results.write_csv(folder / results.SUMMARY, analysis.summarize(table, seed=study.seed))
    run_s = sum(t.get("run_s", 0.0) for t in timings)
    init_steps = sum(t.get("init_steps_per_s", 0.0) * t.get("run_s", 0.0) for t in timings)
    timing_record = {
        "groups": timings,
        "compile_s": sum(t.get("compile_s", 0.0) for t in timings),
        "run_s": run_s,
        "init_steps_per_s": init_steps / run_s if run_s > 0 else None,
        "wall_s": time.perf_counter() - wall,
    }
    manifest = _manifest(
        study,
        run_identity,
        "complete",
        started=started,
        finished=_now(),
        n_settings=len(study.settings),
        n_rows=len(table),
        timings=timing_record,
    )
    results.write_json(folder / results.MANIFEST, manifest)
    _remove_partial(folder)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _in_grid_order(study: Study, frames: list[tuple[list[Setting], pd.DataFrame]]) -> pd.DataFrame:
    """One table from the groups' tables, settings in the config's grid order."""
    position = {setting: i for i, setting in enumerate(study.settings)}
    blocks = []
    for settings, runs in frames:
        for j, setting in enumerate(settings):
            block = runs.iloc[j * study.n_inits : (j + 1) * study.n_inits]
            blocks.append((position[setting], block))
    blocks.sort(key=lambda item: item[0])
    return pd.concat([block for _, block in blocks], ignore_index=True)


def _remove_partial(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder / results.PARTIAL, ignore_errors=True)


def default_folder(name: str) -> Path:
    """``results/<name>/`` relative to the current directory; the name must be a plain name."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(
            f"name = {name!r}: must be a plain folder name (no '/', not '.' or '..'), or give --out"
        )
    return RESULTS_ROOT / name


def fingerprint(study: Study, chunk_size: int | None) -> str:
    """What every process of a multi-process run must agree on (paths may differ by host)."""
    config = {k: v for k, v in resolved_config(study).items() if k != "data.path"}
    data = sorted(
        results.file_digest(s.structure.csv_path) for s in study.settings if s.structure.csv_path
    )
    return json.dumps(
        [config, data, study.n_inits, study.seed, chunk_size], sort_keys=True, default=str
    )


def main(args) -> int:
    """``study run``: see ``study run --help``."""
    several = distributed.initialize(
        args.coordinator, args.num_processes, args.process_id, log=None if args.quiet else _log
    )
    try:
        return _main(args)
    except distributed.PeerError as err:
        if not several:
            raise
        # A lost peer would also fail jax.distributed's shutdown barrier at exit, which aborts
        # the process with a C++ trace; stop here with the one-line message instead.
        print(f"study run: error: {err}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)


def _log(text: str) -> None:
    print(f"study run: {text}", file=sys.stderr, flush=True)


def _main(args) -> int:
    """Load the study (every process alike, failing together) and run it."""

    def load() -> tuple[Study, Path]:
        study = load_study(
            args.config, overrides=args.overrides, n_inits=args.n_inits, seed=args.seed
        )
        folder = Path(args.out) if args.out else default_folder(study.name)
        if args.chunk_size is not None and args.chunk_size < 1:
            raise ConfigError(f"--chunk-size {args.chunk_size}: must be a positive integer")
        return study, folder

    study, folder = distributed.all_or_none(load, "load the config")
    distributed.same_everywhere(fingerprint(study, args.chunk_size), "config, data or options")
    quiet = args.quiet or not distributed.is_writer()
    run_study(
        study,
        folder,
        chunk_size=args.chunk_size,
        force=args.force,
        quiet=quiet,
        figures=not args.no_figures,
    )
    if not quiet:
        print(folder)
    return 0
