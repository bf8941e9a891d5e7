"""A results folder's figures: :func:`plot_results` plans them, draws them and keeps them.

:func:`plot_results` reads a results folder's tables, plans the figures that fit its grid
(:mod:`study.figure_plans`), and draws them (:mod:`study.figure_drawing`), on a machine with 4
or more CPUs in several processes at once (:mod:`study.figure_pool`). A figure is drawn only once
for the same inputs: later ones are copied from the figure cache
(:func:`study.results.figure_cache`), by the digest of everything the image depends on.
matplotlib and seaborn are imported by the functions that draw, so that a rerun whose figures
all come from the cache never loads them.

This module is also the figures' public face: the drawing functions, their style and the plans
are importable from here (``study.plots.plot_heatmap``, ``study.plots.styles``), as listed in
``__all__``.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from study import results
from study.figure_drawing import (
    BOUNDS_LABEL,
    label,
    plot_born_dead_vs_depth,
    plot_curves,
    plot_heatmap,
    plot_proportion_vs,
    plot_survival,
    styles,
)
from study.figure_plans import FigurePlan, figure_plans, figures
from study.figure_pool import FIGURES_PER_PROCESS, _finish_helper, _start_helper, _stop_helper
from study.host import usable_cpus

__all__ = [
    "BOUNDS_LABEL",
    "FigurePlan",
    "figure_plans",
    "figures",
    "label",
    "plot_born_dead_vs_depth",
    "plot_curves",
    "plot_heatmap",
    "plot_proportion_vs",
    "plot_results",
    "plot_survival",
    "styles",
]


def plot_results(
    folder,
    formats: Sequence[str] = ("png", "pdf"),
    processes: int | None = None,
    cache: bool = True,
) -> list[Path]:
    """Draw every figure that fits a results folder's grid into ``DIR/figures/``.

    Reads the folder's summary and runs through :mod:`study.results`; trains nothing. Once all
    are written, the manifest lists them, so that a run killed while drawing is completed by its
    rerun. ``processes``: how many draw at once, this one included (default: one per
    :data:`FIGURES_PER_PROCESS` figures to draw, at most half the CPUs this process may use, so
    one on a 2-core machine, where a second process did not pay). ``cache``: a figure whose
    inputs (:func:`_cache_names`) are those of one drawn before is copied from the figure cache
    (:func:`study.results.figure_cache`), not drawn, and every figure drawn is kept there;
    False draws every figure and leaves the cache as it is. Returns the paths written.
    """
    plans = figure_plans(
        results.read_summary(folder), results.read_runs(folder), results.read_curves(folder)
    )
    store = results.figure_cache() if cache else None
    names = {plan.stem: _cache_names(plan, formats) for plan in plans} if store is not None else {}
    paths, missed = [], []
    for plan in plans:
        kept = [results.cached_figure(store, name) for name in names.get(plan.stem) or []]
        if not kept or None in kept:
            missed.append(plan)
            continue
        for suffix, data in zip(formats, kept, strict=True):
            paths.append(results.write_figure(folder, f"{plan.stem}.{suffix}", data))
    drawn = _draw(folder, missed, formats, processes)
    if store is not None and missed:
        by_name = {path.name: path for path in drawn}
        for plan in missed:
            if names[plan.stem] is None:  # arguments without a canonical form: not kept
                continue
            for suffix, name in zip(formats, names[plan.stem], strict=True):
                results.keep_figure(store, name, by_name[f"{plan.stem}.{suffix}"])
        results.prune_figure_cache(store)
    results.record_figures(folder, paths + drawn)
    return paths + drawn


def _draw(folder, plans: list[FigurePlan], formats: Sequence[str], processes: int | None):
    """Draw and save ``plans``, in helper processes too where that pays; the paths written."""
    if not plans:
        return []  # and matplotlib is not even imported
    if processes is None:
        processes = min(usable_cpus() // 2, len(plans) // FIGURES_PER_PROCESS)
    processes = max(min(processes, len(plans)), 1)
    shares = [plans[i::processes] for i in range(processes)]
    helpers = [_start_helper(folder, share, formats) for share in shares[1:]]
    try:
        paths = results.save_figures(folder, ((p.stem, p.figure()) for p in shares[0]), formats)
        for helper in helpers:
            paths += _finish_helper(helper)
    finally:
        for helper in helpers:
            _stop_helper(helper)
    return paths


def _cache_names(plan: FigurePlan, formats: Sequence[str]) -> list[str] | None:
    """A plan's file names in the figure cache, one per format: ``<digest>.<format>``.

    The digest (SHA-256) is of everything the image depends on: the study package's source
    and the drawing libraries' versions (:func:`_code_digest`), the draw function's name, its
    arguments (:func:`_feed`), the format and the resolution. None for arguments that have no
    canonical form (such a figure is drawn every time).
    """
    digest = hashlib.sha256(_code_digest())
    _feed(digest, f"{plan.draw.__module__}.{plan.draw.__qualname__}")
    try:
        _feed(digest, plan.arguments)
    except (TypeError, ValueError):
        return None
    names = []
    for suffix in formats:
        each = digest.copy()
        _feed(each, [suffix, results.FIGURE_DPI])
        names.append(f"{each.hexdigest()}.{suffix}")
    return names


@functools.cache
def _code_digest() -> bytes:
    """The digest of what every figure depends on besides its plan: the source of every module
    of the study package (read once per process) and the versions of the libraries that draw."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        _feed(digest, [path.name, path.read_bytes()])
    for name in ("study", "matplotlib", "seaborn", "numpy", "pandas"):
        _feed(digest, [name, metadata.version(name)])
    for path in _matplotlibrc_files():  # a user's settings, read without importing matplotlib
        _feed(digest, [str(path), path.read_bytes()])
    return digest.digest()


def _matplotlibrc_files() -> list[Path]:
    """The matplotlibrc files matplotlib would read before its own defaults: ``MATPLOTLIBRC``,
    ``./matplotlibrc``, and the one in ``MPLCONFIGDIR`` or ``~/.config/matplotlib``."""
    config = os.environ.get("MPLCONFIGDIR") or Path.home() / ".config" / "matplotlib"
    places = [os.environ.get("MATPLOTLIBRC"), "matplotlibrc", Path(config) / "matplotlibrc"]
    found = []
    for place in filter(None, places):
        path = Path(place)
        path = path / "matplotlibrc" if path.is_dir() else path
        if path.is_file():
            found.append(path)
    return found


def _feed(digest, value) -> None:
    """Add ``value`` to ``digest`` in a canonical form: equal values, equal bytes, and no two
    different values alike (each part is a tag, its length and its bytes).

    A DataFrame by its columns, dtypes and index and ``pandas.util.hash_pandas_object`` of its
    rows (index included); dicts in their order (that of ``fixed`` is the title's); NumPy
    scalars as the Python ones (drawn alike). Raises TypeError for any other kind of value.
    """

    def part(tag: bytes, data: bytes) -> None:
        digest.update(tag + len(data).to_bytes(8, "little") + data)

    if isinstance(value, pd.DataFrame):
        part(b"D", b"")
        layout = [value.columns, value.dtypes, value.index.names, [value.index.dtype]]
        _feed(digest, [[str(item) for item in names] for names in layout])
        part(b"H", pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
    elif isinstance(value, dict):
        part(b"M", str(len(value)).encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, list | tuple):
        part(b"L", str(len(value)).encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, np.generic):
        _feed(digest, value.item())
    elif isinstance(value, bytes):
        part(b"B", value)
    elif value is None or isinstance(value, bool | int | float | str):
        part(b"S", f"{type(value).__name__}:{value!r}".encode())
    else:
        raise TypeError(f"no canonical form for a {type(value).__name__}")
