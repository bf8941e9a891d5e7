"""Which figures fit a results folder's grid, as plans: what to draw, from which small tables.

:func:`figure_plans` lists a :class:`FigurePlan` per figure file: a draw function of
:mod:`study.figure_drawing`, its arguments and the file's stem. Each kind of figure is planned only
when the grid varies the settings it needs; settings that vary but are not on the figure split it
into files (at most :data:`MAX_FILES_PER_FIGURE` per kind), named by their levels. Nothing is
drawn here; the tables come from :mod:`study.analysis`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from study import analysis, predictors
from study.figure_drawing import (
    SHORT,
    fmt,
    plot_auroc,
    plot_born_dead_vs_depth,
    plot_curves,
    plot_heatmap,
    plot_proportion_vs,
    plot_survival,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_FILES_PER_FIGURE = 12
MIN_DEPTHS = 3  # figure (e) draws a curve against depth: it needs at least this many depths


def _splits(table: pd.DataFrame, on_figure: Sequence[str]):
    """``(fixed, rows)`` for each combination of the varying settings not on the figure."""
    others = analysis.free_axes(table, on_figure)
    if not others:
        yield {}, table
        return
    combos = table[others].drop_duplicates().sort_values(others)
    for values in itertools.islice(combos.itertuples(index=False), MAX_FILES_PER_FIGURE):
        fixed = dict(zip(others, values, strict=True))
        mask = np.logical_and.reduce([table[k] == v for k, v in fixed.items()])
        yield fixed, table[mask]


def _file_stem(kind: str, fixed: dict) -> str:
    if not fixed:
        return kind
    parts = [f"{SHORT.get(k, k.split('.')[-1])}-{fmt(v)}" for k, v in fixed.items()]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", kind + "__" + "__".join(parts))


def _varies(table: pd.DataFrame, name: str) -> bool:
    return name in table and table[name].nunique() > 1


class FigurePlan(NamedTuple):
    """One figure to draw: ``draw(**arguments)`` returns it; ``stem`` names its files.

    The arguments are the small tables the figure shows, so a plan can be sent to another
    process and drawn there.
    """

    stem: str
    draw: Callable[..., Figure]
    arguments: dict

    def figure(self) -> Figure:
        return self.draw(**self.arguments)


def figure_plans(
    summary: pd.DataFrame, runs: pd.DataFrame | None = None, curves: pd.DataFrame | None = None
) -> list[FigurePlan]:
    """Every figure that fits the grid, as plans, in file order; nothing is drawn yet.

    ``summary`` is :func:`study.analysis.summarize`'s table; ``runs`` (the per-initialization
    table) is needed for the survival curves only, ``curves`` (``curves.parquet``) for the
    error and dead-share curves, both for the AUROC of each metric in a run with the
    trainability probe (:mod:`study.predictors`).
    """
    plans = []
    hue = "model.activation"
    for kind, x in (
        ("p_dead_vs_offset", "data.offset"),
        ("p_dead_vs_init_range", "model.init_range"),
    ):
        if _varies(summary, x):
            for fixed, rows in _splits(summary, [x, hue, "model.depth"]):
                arguments = dict(summary=rows, x=x, hue=hue, col="model.depth", fixed=fixed)
                plans.append(FigurePlan(_file_stem(kind, fixed), plot_proportion_vs, arguments))
    if _varies(summary, "data.offset") and _varies(summary, "model.init_range"):
        for fixed, rows in _splits(summary, ["data.offset", "model.init_range", hue]):
            arguments = dict(summary=rows, fixed=fixed)
            plans.append(FigurePlan(_file_stem("heatmap", fixed), plot_heatmap, arguments))
    if "model.depth" in summary and summary["model.depth"].nunique() >= MIN_DEPTHS:
        for fixed, rows in _splits(summary, ["model.depth", "model.width"]):
            arguments = dict(summary=rows, fixed=fixed)
            stem = _file_stem("born_dead_vs_depth", fixed)
            plans.append(FigurePlan(stem, plot_born_dead_vs_depth, arguments))
    if runs is not None:
        plans.extend(_survival_plans(runs))
    if curves is not None:
        plans.extend(_curve_plans(curves))
    if runs is not None and curves is not None and predictors.has_probe(runs, curves):
        plans.extend(_auroc_plans(runs, curves))
    return plans


def _auroc_plans(runs: pd.DataFrame, curves: pd.DataFrame) -> list[FigurePlan]:
    """A figure per setting of a run with the probe: each metric's AUROC against the step."""
    plans = []
    for fixed, rows in _splits(runs, []):
        table = predictors.auroc_curves(rows, curves)
        if table["auroc"].notna().any():
            arguments = dict(table=table, fixed=fixed)
            plans.append(FigurePlan(_file_stem(predictors.FIGURE, fixed), plot_auroc, arguments))
    return plans


# The settings whose levels the curves' lines are, the first that varies (the variants of a
# config with variants, so that they are compared on one figure).
CURVE_HUES = (
    "variant",
    "model.activation",
    "model.depth",
    "train.learning_rate",
    "train.optimizer",
)
# The same for the survival curves; the activation when none varies.
SURVIVAL_HUES = ("variant", "train.optimizer")


def _curve_plans(curves: pd.DataFrame) -> list[FigurePlan]:
    hue = next((name for name in CURVE_HUES if _varies(curves, name)), None)
    plans = []
    for fixed, rows in _splits(curves, [hue] if hue else []):
        arguments = dict(curves=analysis.mean_curves(rows, hue), hue=hue, fixed=fixed)
        plans.append(FigurePlan(_file_stem("curves", fixed), plot_curves, arguments))
    return plans


def figures(
    summary: pd.DataFrame, runs: pd.DataFrame | None = None
) -> Iterator[tuple[str, Figure]]:
    """Every figure that fits the grid, as ``(file stem, figure)``, drawn one at a time."""
    for plan in figure_plans(summary, runs):
        yield plan.stem, plan.figure()


def _survival_plans(runs: pd.DataFrame) -> list[FigurePlan]:
    if (runs["train.steps"] <= runs["train.log_every"]).all():
        return []  # a single logged step after init: no curve to draw
    hue = next((name for name in SURVIVAL_HUES if _varies(runs, name)), "model.activation")
    col = "data.offset" if _varies(runs, "data.offset") else None
    on_figure = [hue] + ([col] if col else [])
    plans = []
    for fixed, rows in _splits(runs, on_figure):
        arguments = dict(curves=analysis.survival(rows, on_figure), hue=hue, col=col, fixed=fixed)
        plans.append(FigurePlan(_file_stem("survival", fixed), plot_survival, arguments))
    return plans
