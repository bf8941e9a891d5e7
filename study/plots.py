"""A results folder's figures: :func:`plot_results` plans them, draws them and keeps them.

:func:`plot_results` reads a results folder's tables, plans the figures that fit its grid
(:mod:`study.figure_plans`), and draws them (:mod:`study.figure_drawing`), on a machine with 4
or more CPUs in several processes at once (:mod:`study.figure_pool`). A figure is drawn only once
for the same inputs: later ones are copied from the figure cache
(:mod:`study.results.figure_cache`), by the digest of everything the image depends on.
matplotlib and seaborn are imported by the functions that draw, so that a rerun whose figures
all come from the cache never loads them.

This module is also the figures' public face: the drawing functions, their style and the plans
are importable from here (``study.plots.plot_heatmap``, ``study.plots.styles``), as listed in
``__all__``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
from study.figure_pool import FIGURES_PER_PROCESS, finish_helper, start_helper, stop_helper
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
    folder: results.ResultsFolder | str | Path,
    formats: Sequence[str] = ("png", "pdf"),
    processes: int | None = None,
    cache: bool = True,
) -> list[Path]:
    """Draw every figure that fits a results folder's grid into its ``figures/``.

    ``folder``: a :class:`study.results.ResultsFolder`, or the path of one (opened here).

    Reads the folder's summary, runs and curves; trains nothing. Once all are written, the
    manifest lists them, so that a run killed while drawing is completed by its rerun.
    ``processes``: how many draw at once, this one included (default: one per
    :data:`FIGURES_PER_PROCESS` figures to draw, at most half the CPUs this process may use, so
    one on a 2-core machine, where a second process did not pay). ``cache``: a figure whose
    inputs (:func:`study.results.cache_names`) are those of one drawn before is copied from the
    figure cache (:class:`study.results.FigureCache`), not drawn, and every figure drawn is kept
    there; False draws every figure and leaves the cache as it is. Returns the paths written.
    """
    if not isinstance(folder, results.ResultsFolder):
        folder = results.ResultsFolder.open(folder)
    plans = figure_plans(folder.summary(), folder.runs(), folder.curves())
    store = results.FigureCache.open() if cache else None
    names: dict[str, list[str] | None] = {}
    if store is not None:
        names = {p.stem: results.cache_names(p.draw, p.arguments, formats) for p in plans}
    paths, missed = [], []
    for plan in plans:
        kept = [store.get(name) for name in names.get(plan.stem) or []] if store else []
        found = [data for data in kept if data is not None]
        if not kept or len(found) < len(kept):
            missed.append(plan)
            continue
        for suffix, data in zip(formats, found, strict=True):
            paths.append(folder.write_figure(f"{plan.stem}.{suffix}", data))
    drawn = _draw(folder, missed, formats, processes)
    if store is not None and missed:
        by_name = {path.name: path for path in drawn}
        for plan in missed:
            plan_names = names[plan.stem]
            if plan_names is None:  # arguments without a canonical form: not kept
                continue
            for suffix, name in zip(formats, plan_names, strict=True):
                store.keep(name, by_name[f"{plan.stem}.{suffix}"])
        store.prune()
    folder.record_figures(paths + drawn)
    return paths + drawn


def _draw(
    folder: results.ResultsFolder,
    plans: list[FigurePlan],
    formats: Sequence[str],
    processes: int | None,
) -> list[Path]:
    """Draw and save ``plans``, in helper processes too where that pays; the paths written."""
    if not plans:
        return []  # and matplotlib is not even imported
    if processes is None:
        processes = min(usable_cpus() // 2, len(plans) // FIGURES_PER_PROCESS)
    processes = max(min(processes, len(plans)), 1)
    shares = [plans[i::processes] for i in range(processes)]
    helpers = [start_helper(folder.path, share, formats) for share in shares[1:]]
    try:
        paths = folder.save_figures(((p.stem, p.figure()) for p in shares[0]), formats)
        for helper in helpers:
            paths += finish_helper(helper)
    finally:
        for helper in helpers:
            stop_helper(helper)
    return paths
