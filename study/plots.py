"""Paper-style figures of a results folder, drawn with seaborn from its summary tables.

Every figure uses one style: seaborn's ``ticks`` theme, the ``colorblind`` palette, and for each
series a marker and a line style too, so that the figures stay readable in grayscale. Intervals are
95% Wilson bands; closed forms are black dotted lines, and proved bounds (where no exact value is
known) black hatched bands. The number of initializations per setting
is in every title.

Figures (issue 4): (a) P(dead) at init and at the end against the data offset, hue activation, a
panel per depth, with theory; (b) the same against the init range; (c) survival curves against the
training step; (d) a heatmap of P(dead at end) over offset x init range; (e) P(born dead) against
depth, a line per width, with the one-ray closed form. Each is drawn only when the folder's grid
varies the settings it needs; settings that vary but are not on the figure split it into files.

The functions here only draw: every number comes from :mod:`study.analysis` or
:mod:`study.theory`. :func:`plot_results` draws a results folder's figures, on a machine with 4 or
more CPUs in several processes at once. A figure is drawn only once for the same inputs: later
ones are copied from the figure cache (:mod:`study.results.figure_cache`), by the digest of
everything the image depends on. matplotlib and seaborn are imported by the functions that
draw, so that a rerun whose figures all come from the cache never loads them.
"""

from __future__ import annotations

import itertools
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from study import analysis, results, theory
from study.host import usable_cpus

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
THEORY_STYLE = {"color": "black", "linestyle": ":", "linewidth": 1.4, "marker": "x"}
# Proved bounds where no exact value is known: a hatched band between them, no fill.
BOUNDS_STYLE = {"facecolor": "none", "edgecolor": "black", "hatch": "///", "linewidth": 0.6}
BOUNDS_LABEL = "proved bounds"
BAND_ALPHA = 0.2
MAX_FILES_PER_FIGURE = 12
MIN_DEPTHS = 3  # figure (e) draws a curve against depth: it needs at least this many depths
# The fixed layout of the figures, in inches (what tight_layout found for them, measured once).
LEFT_IN, BOTTOM_IN = 0.7, 0.62  # tick labels and axis label
GAP_IN = 0.23  # between panels that share their axes
HEATMAP_GAP_IN = 0.42  # between heatmap panels, which each have tick labels
MARGIN_IN = 0.2  # right of the last panel, or of its legend
COLORBAR_MARGIN_IN = 0.4  # right of a heatmap's color bar: its tick labels and label
SUPTITLE_Y_IN = 0.02  # matplotlib's suptitle is at 0.98 of the figure's height
TITLE_LINE_IN = 0.22  # a line of the suptitle (12.7 pt x 1.2)
TITLE_PAD_IN = 0.16  # between the suptitle and the panels
PANEL_TITLE_IN = 0.24  # a panel's title and its pad
EDGE_PAD_IN = 0.05  # the least space between a legend or the suptitle and the canvas's edge
AXIS_LABEL_LINE_IN = 0.18  # a line of an axis label after its first (10.6 pt x 1.2)
TICK_LABEL_IN = 0.2  # the width of y tick labels that LEFT_IN leaves room for: "0.0" to "1.0"
# A helper process takes ~1.5 s to start (Python, pandas, matplotlib): about 3 figures' drawing.
FIGURES_PER_PROCESS = 8

LABELS = {
    "data.offset": "data offset (added to every feature)",
    # two lines: on one, it is wider than a panel, and side by side panels' labels overlapped
    "model.init_range": "init range a\n(weights ~ U(-a, a) or N(0, a²))",
    "model.depth": "hidden layers L",
    "model.width": "width N (units per hidden layer)",
    "model.activation": "activation",
    "train.optimizer": "optimizer",
    "step": "training step",
}
SHORT = {
    "data.offset": "offset",
    "model.init_range": "init_range",
    "model.depth": "depth",
    "model.width": "width",
    "model.activation": "activation",
    "train.optimizer": "optimizer",
}


def label(name: str) -> str:
    """The axis label of a setting column."""
    return LABELS.get(name, name)


def styles(levels: Sequence) -> dict:
    """One (color, marker, linestyle) per level, in the colorblind palette."""
    import seaborn as sns

    palette = sns.color_palette("colorblind", max(len(levels), 1))
    return {
        level: {
            "color": palette[i % len(palette)],
            "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)],
        }
        for i, level in enumerate(levels)
    }


def _apply_theme() -> None:
    import seaborn as sns

    sns.set_theme(context="paper", style="ticks", palette="colorblind", font_scale=1.1)


def _n_text(n_inits: pd.Series) -> str:
    low, high = int(n_inits.min()), int(n_inits.max())
    count = f"{low}" if low == high else f"{low}-{high}"
    return f"n = {count} initializations per setting"


def _fixed_text(fixed: dict) -> str:
    return ", ".join(f"{SHORT.get(k, k)} = {_fmt(v)}" for k, v in fixed.items())


def _fmt(value) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:g}"
    return str(value)


def _panels(table: pd.DataFrame, col: str | None) -> list:
    if col is None or col not in table:
        return [None]
    return sorted(table[col].unique())


def _select(table: pd.DataFrame, col: str | None, level) -> pd.DataFrame:
    return table if level is None else table[table[col] == level]


def _title(base: str, table: pd.DataFrame, fixed: dict) -> str:
    parts = [base, _n_text(table["n_inits"])]
    if fixed:
        parts.append(_fixed_text(fixed))
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------------------------


def plot_proportion_vs(
    summary: pd.DataFrame,
    x: str,
    hue: str = "model.activation",
    col: str | None = "model.depth",
    fixed: dict | None = None,
) -> Figure:
    """(a)/(b): P(network dead) at init (top row) and at the end (bottom) against ``x``.

    A line per ``hue`` level with its Wilson band, a panel per ``col`` level, and the closed form
    ``p_dead_init_theory`` (where one applies) in the top row.
    """
    import matplotlib.pyplot as plt

    _apply_theme()
    panels = _panels(summary, col)
    hue_levels = sorted(summary[hue].unique()) if hue in summary else [None]
    look = styles(hue_levels)
    fig, axes = plt.subplots(
        2,
        len(panels),
        figsize=(3.6 * len(panels) + 1.2, 6.0),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for j, panel in enumerate(panels):
        table = _select(summary, col, panel)
        for i, (metric, when) in enumerate((("p_dead_init", "at init"), ("p_dead_end", "at end"))):
            ax = axes[i, j]
            for level in hue_levels:
                rows = table if level is None else table[table[hue] == level]
                _draw_proportion(ax, rows.sort_values(x), x, metric, _fmt(level), look[level])
            if x == "model.init_range":
                ax.set_xscale("log")
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel(label(x) if i == 1 else "")
            ax.set_ylabel(f"P(network dead) {when}" if j == 0 else "")
            if panel is not None:
                ax.set_title(f"{SHORT.get(col, col)} = {_fmt(panel)}" if i == 0 else "")
    legend = _legend(fig, axes[0, -1], hue)
    title = fig.suptitle(_title(f"P(dead) against {SHORT.get(x, x)}", summary, fixed or {}))
    _fixed_layout(fig, axes, title=title, legend=legend, panel_titles=col in summary)
    return fig


def _draw_proportion(ax, rows: pd.DataFrame, x: str, metric: str, name: str, look: dict) -> None:
    """One series of a proportion against ``x``: its Wilson band, its line, and its theory."""
    if rows.empty:
        return
    band = {"color": look["color"], "alpha": BAND_ALPHA, "linewidth": 0}
    ax.fill_between(rows[x], rows[f"{metric}_lo"], rows[f"{metric}_hi"], **band)
    ax.plot(rows[x], rows[metric], label=name, **look)
    if metric == "p_dead_init" and "p_dead_init_theory" in rows:
        known = rows[rows["p_dead_init_theory"].notna()]
        if not known.empty:
            ax.plot(known[x], known["p_dead_init_theory"], label="closed form", **THEORY_STYLE)
        _draw_bounds(ax, rows, x)


def _draw_bounds(ax, rows: pd.DataFrame, x: str) -> None:
    """The hatched band between ``p_dead_init_lower`` and ``_upper`` where only bounds exist."""
    if "p_dead_init_lower" not in rows:
        return
    bounded = rows[rows["p_dead_init_lower"].notna() & rows["p_dead_init_upper"].notna()]
    if bounded.empty:
        return
    ax.fill_between(
        bounded[x],
        bounded["p_dead_init_lower"],
        bounded["p_dead_init_upper"],
        label=BOUNDS_LABEL,
        **BOUNDS_STYLE,
    )


def _fixed_layout(
    fig: Figure,
    axes: np.ndarray,
    *,
    title,
    legend=None,
    gap=GAP_IN,
    margin=MARGIN_IN,
    panel_titles=True,
) -> None:
    """Place the panels ``axes`` (rows x columns) at fixed margins and gaps, in inches.

    Used instead of ``tight_layout``, which measures every label of the figure in a pass of its
    own, and of saving with ``bbox_inches="tight"``, which draws the figure twice: the margins are
    those tight_layout found for these figures. The saved file is the canvas, not cropped, so
    the margins follow what varies: the top one grows with the lines of the suptitle ``title``,
    and the figure widens (equally on both sides) for a line of it wider than the figure; the
    left and bottom ones grow with the lines of the axis labels, and the left one with y tick
    labels wider than "0.0"; the right one is the width of the legend, and a legend that hangs
    below the figure makes it taller. Only these texts are measured (by their font, not drawn).
    """
    renderer = fig.canvas.get_renderer()
    width, height = fig.get_size_inches()
    side = max(_inches(title, renderer).width + 2 * EDGE_PAD_IN - width, 0) / 2
    if side:
        fig.set_size_inches(width + 2 * side, height)
    left = LEFT_IN + side + _extra_lines([ax.get_ylabel() for ax in axes[:, 0]])
    bottom = BOTTOM_IN + _extra_lines([ax.get_xlabel() for ax in axes[-1]])
    right = margin + side + (_inches(legend, renderer).width if legend is not None else 0)
    lines = title.get_text().count("\n") + 1
    top = lines * TITLE_LINE_IN + TITLE_PAD_IN + (PANEL_TITLE_IN if panel_titles else 0)
    _place(fig, axes.shape, gap, left=left, bottom=bottom, right=right, top=top)
    # the y ticks are those of the panels' final height (their number, so their decimals, follow)
    wider = max(_widest_y_tick(ax, renderer) for ax in axes[:, 0]) - TICK_LABEL_IN
    if wider > 0:
        left += wider
        _place(fig, axes.shape, gap, left=left, bottom=bottom, right=right, top=top)
    below = EDGE_PAD_IN - _inches(legend, renderer).y0 if legend is not None else 0
    if below > 0:  # the legend hangs from its panel's top: a taller figure lifts its bottom
        width, height = fig.get_size_inches()
        fig.set_size_inches(width, height + below)
        _place(fig, axes.shape, gap, left=left, bottom=bottom, right=right, top=top)


def _place(fig: Figure, shape, gap, *, left, bottom, right, top) -> None:
    """``subplots_adjust`` in inches; ``top`` is below the suptitle (at 0.98 of the height)."""
    width, height = fig.get_size_inches()
    rows, cols = shape
    top += SUPTITLE_Y_IN * height
    panel_width = (width - left - right - (cols - 1) * gap) / cols
    panel_height = (height - top - bottom - (rows - 1) * GAP_IN) / rows
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=gap / panel_width,
        hspace=GAP_IN / panel_height,
    )


def _inches(artist, renderer):
    """An artist's extent on the canvas, in inches."""
    return artist.get_window_extent(renderer).transformed(artist.figure.dpi_scale_trans.inverted())


def _extra_lines(labels: list[str]) -> float:
    """The room (inches) that axis labels on more than one line take beyond the first."""
    return max(label.count("\n") for label in labels) * AXIS_LABEL_LINE_IN


def _widest_y_tick(ax, renderer) -> float:
    """The width (inches) of ``ax``'s widest y tick label within its limits."""
    low, high = sorted(ax.get_ylim())
    shown = [
        label
        for label in ax.get_yticklabels()
        if label.get_text() and low <= label.get_position()[1] <= high
    ]
    return max((_inches(label, renderer).width for label in shown), default=0.0)


def _legend(fig, ax, hue: str, band_label: str = "95% Wilson interval"):
    import matplotlib.pyplot as plt

    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    band = plt.Rectangle((0, 0), 1, 1, color="gray", alpha=BAND_ALPHA)
    unique[band_label] = band
    if BOUNDS_LABEL in unique:  # keep the bounds' entry last, after the Wilson band
        unique[BOUNDS_LABEL] = unique.pop(BOUNDS_LABEL)
    return ax.legend(
        unique.values(),
        unique.keys(),
        title=SHORT.get(hue, hue),
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        frameon=False,
    )


def plot_survival(
    curves: pd.DataFrame, hue: str, col: str | None = None, fixed: dict | None = None
) -> Figure:
    """(c): fraction of networks not yet dead for good against the training step.

    ``curves`` is :func:`study.analysis.survival`'s table; a line per ``hue`` level with its
    Wilson band, a panel per ``col`` level.
    """
    import matplotlib.pyplot as plt

    _apply_theme()
    panels = _panels(curves, col)
    hue_levels = sorted(curves[hue].unique())
    look = styles(hue_levels)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.6 * len(panels) + 1.2, 3.4), sharey=True, squeeze=False
    )
    for j, panel in enumerate(panels):
        ax = axes[0, j]
        table = _select(curves, col, panel)
        for level in hue_levels:
            rows = table[table[hue] == level].sort_values("step")
            if rows.empty:
                continue
            ax.fill_between(
                rows["step"],
                rows["alive_lo"],
                rows["alive_hi"],
                color=look[level]["color"],
                alpha=BAND_ALPHA,
                linewidth=0,
                step="post",
            )
            style = {**look[level], "markevery": max(len(rows) // 8, 1)}
            ax.step(rows["step"], rows["alive"], where="post", label=_fmt(level), **style)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(label("step"))
        ax.set_ylabel("fraction of networks alive" if j == 0 else "")
        if panel is not None:
            ax.set_title(f"{SHORT.get(col, col)} = {_fmt(panel)}")
    n_text = f"n = {int(curves['n_valid'].min())}-{int(curves['n_valid'].max())} runs per curve"
    if curves["n_valid"].nunique() == 1:
        n_text = f"n = {int(curves['n_valid'].iloc[0])} initializations per curve"
    title = "Survival: networks not yet dead for good\n" + n_text
    if fixed:
        title += "\n" + _fixed_text(fixed)
    legend = _legend(fig, axes[0, -1], hue)
    _fixed_layout(fig, axes, title=fig.suptitle(title), legend=legend, panel_titles=col is not None)
    return fig


def plot_heatmap(
    summary: pd.DataFrame,
    x: str = "data.offset",
    y: str = "model.init_range",
    value: str = "p_dead_end",
    col: str | None = "model.activation",
    fixed: dict | None = None,
) -> Figure:
    """(d): a heatmap of ``value`` over ``x`` x ``y``, a panel per ``col`` level, values written.

    The ``viridis`` map is perceptually uniform and ordered in lightness, so it reads in grayscale
    and for colorblind readers.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    _apply_theme()
    panels = _panels(summary, col)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels) + 1.0, 3.6), squeeze=False)
    for j, panel in enumerate(panels):
        ax = axes[0, j]
        table = _select(summary, col, panel).pivot_table(index=y, columns=x, values=value)
        sns.heatmap(
            table.sort_index(ascending=False),
            ax=ax,
            vmin=0,
            vmax=1,
            cmap="viridis",
            annot=True,
            fmt=".2f",
            cbar=j == len(panels) - 1,
            cbar_kws={"label": "P(network dead) at end"},
            xticklabels=[_fmt(v) for v in table.columns],
            yticklabels=[_fmt(v) for v in table.index[::-1]],
        )
        ax.set_xlabel(label(x))
        ax.set_ylabel(label(y) if j == 0 else "")
        if panel is not None:
            ax.set_title(f"{SHORT.get(col, col)} = {_fmt(panel)}")
    title = fig.suptitle(_title("P(dead at end of training)", summary, fixed or {}))
    # each panel has its own tick labels on the left: a wider gap
    _fixed_layout(
        fig,
        axes,
        title=title,
        gap=HEATMAP_GAP_IN,
        margin=COLORBAR_MARGIN_IN,
        panel_titles=col in summary,
    )
    return fig


def plot_born_dead_vs_depth(
    summary: pd.DataFrame, fixed: dict | None = None, hue: str = "model.width"
) -> Figure:
    """(e): P(network dead at init) against depth, a line per width, with closed forms.

    Drawn beside the estimates: ``p_dead_init_theory`` where a formula applies to these data, and
    for reference the one-ray formula ``1 - (1 - 2^-N)^L`` (Lu et al. 2019), thin and dashed.
    """
    import matplotlib.pyplot as plt

    _apply_theme()
    levels = sorted(summary[hue].unique())
    look = styles(levels)
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for level in levels:
        rows = summary[summary[hue] == level].sort_values("model.depth")
        ax.fill_between(
            rows["model.depth"],
            rows["p_dead_init_lo"],
            rows["p_dead_init_hi"],
            color=look[level]["color"],
            alpha=BAND_ALPHA,
            linewidth=0,
        )
        ax.plot(rows["model.depth"], rows["p_dead_init"], label=f"N = {level}", **look[level])
        known = rows[rows["p_dead_init_theory"].notna()]
        if not known.empty:
            ax.plot(
                known["model.depth"],
                known["p_dead_init_theory"],
                **THEORY_STYLE,
                label="closed form for these data",
            )
        _draw_bounds(ax, rows, "model.depth")
        if hue == "model.width":
            depths = np.arange(1, int(rows["model.depth"].max()) + 1)
            ax.plot(
                depths,
                [theory.p_dead_ray(int(level), int(d)) for d in depths],
                color=look[level]["color"],
                linestyle="--",
                linewidth=0.9,
                label="1 - (1 - 2^-N)^L (one ray)",
            )
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(label("model.depth"))
    ax.set_ylabel("P(network dead) at init")
    legend = _legend(fig, ax, hue)
    title = fig.suptitle(_title("P(born dead) against depth", summary, fixed or {}))
    _fixed_layout(fig, np.array([[ax]]), title=title, legend=legend, panel_titles=False)
    return fig


# --------------------------------------------------------------------------------------------
# A results folder's figures.
# --------------------------------------------------------------------------------------------


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
    parts = [f"{SHORT.get(k, k.split('.')[-1])}-{_fmt(v)}" for k, v in fixed.items()]
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
    error and dead-share curves.
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
    return plans


# The settings whose levels the curves' lines are, the first that varies.
CURVE_HUES = ("model.activation", "model.depth", "train.learning_rate", "train.optimizer")


def _curve_plans(curves: pd.DataFrame) -> list[FigurePlan]:
    hue = next((name for name in CURVE_HUES if _varies(curves, name)), None)
    plans = []
    for fixed, rows in _splits(curves, [hue] if hue else []):
        arguments = dict(curves=analysis.mean_curves(rows, hue), hue=hue, fixed=fixed)
        plans.append(FigurePlan(_file_stem("curves", fixed), plot_curves, arguments))
    return plans


def plot_curves(curves: pd.DataFrame, hue: str | None, fixed: dict | None = None) -> Figure:
    """A stream's (or any run with curves') error and share of hidden units dead against the
    step, a line per level of ``hue`` with its 95% band over the initializations."""
    import matplotlib.pyplot as plt

    _apply_theme()
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.6), squeeze=False)
    levels = sorted(curves["level"].unique(), key=str)
    look = styles(levels)
    for ax, name, ylabel in (
        (
            axes[0, 0],
            "error",
            "error (a stream: mean since the last step;\nelse the training loss)",
        ),
        (axes[0, 1], "dead_share", "share of hidden units dead"),
    ):
        for level in levels:
            rows = curves[(curves["level"] == level) & curves[name].notna()].sort_values("step")
            if rows.empty:
                continue
            style = {**look[level], "markevery": max(len(rows) // 8, 1)}
            ax.plot(rows["step"], rows[name], label=_fmt(level), **style)
            ax.fill_between(
                rows["step"],
                rows[f"{name}_lo"],
                rows[f"{name}_hi"],
                color=look[level]["color"],
                alpha=BAND_ALPHA,
                linewidth=0,
            )
        ax.set_xlabel("step (examples seen, for a stream)")
        ax.set_ylabel(ylabel)
    title = f"Curves: mean over n = {int(curves['n'].max())} initializations, 95% bands"
    if fixed:
        title += "\n" + _fixed_text(fixed)
    legend = _legend(fig, axes[0, -1], hue, "95% interval (mean)") if hue else None
    _fixed_layout(
        fig,
        axes,
        title=fig.suptitle(title),
        legend=legend,
        panel_titles=False,
        gap=GAP_IN * 2.5,
    )
    return fig


def figures(
    summary: pd.DataFrame, runs: pd.DataFrame | None = None
) -> Iterator[tuple[str, Figure]]:
    """Every figure that fits the grid, as ``(file stem, figure)``, drawn one at a time."""
    for plan in figure_plans(summary, runs):
        yield plan.stem, plan.figure()


def _survival_plans(runs: pd.DataFrame) -> list[FigurePlan]:
    if (runs["train.steps"] <= runs["train.log_every"]).all():
        return []  # a single logged step after init: no curve to draw
    hue = "train.optimizer" if _varies(runs, "train.optimizer") else "model.activation"
    col = "data.offset" if _varies(runs, "data.offset") else None
    on_figure = [hue] + ([col] if col else [])
    plans = []
    for fixed, rows in _splits(runs, on_figure):
        arguments = dict(curves=analysis.survival(rows, on_figure), hue=hue, col=col, fixed=fixed)
        plans.append(FigurePlan(_file_stem("survival", fixed), plot_survival, arguments))
    return plans


def plot_results(
    folder: results.ResultsFolder,
    formats: Sequence[str] = ("png", "pdf"),
    processes: int | None = None,
    cache: bool = True,
) -> list[Path]:
    """Draw every figure that fits a results folder's grid into its ``figures/``.

    Reads the folder's summary, runs and curves; trains nothing. Once all are written, the
    manifest lists them, so that a run killed while drawing is completed by its rerun.
    ``processes``: how many draw at once, this one included (default: one per
    :data:`FIGURES_PER_PROCESS` figures to draw, at most half the CPUs this process may use, so
    one on a 2-core machine, where a second process did not pay). ``cache``: a figure whose
    inputs (:func:`study.results.cache_names`) are those of one drawn before is copied from the
    figure cache (:class:`study.results.FigureCache`), not drawn, and every figure drawn is kept
    there; False draws every figure and leaves the cache as it is. Returns the paths written.
    """
    plans = figure_plans(folder.summary(), folder.runs(), folder.curves())
    store = results.FigureCache.open() if cache else None
    names: dict[str, list[str] | None] = {}
    if store is not None:
        names = {p.stem: results.cache_names(p.draw, p.arguments, formats) for p in plans}
    paths, missed = [], []
    for plan in plans:
        kept = [store.get(name) for name in names.get(plan.stem) or []]
        if not kept or None in kept:
            missed.append(plan)
            continue
        for suffix, data in zip(formats, kept, strict=True):
            paths.append(folder.write_figure(f"{plan.stem}.{suffix}", data))
    drawn = _draw(folder, missed, formats, processes)
    if store is not None and missed:
        by_name = {path.name: path for path in drawn}
        for plan in missed:
            if names[plan.stem] is None:  # arguments without a canonical form: not kept
                continue
            for suffix, name in zip(formats, names[plan.stem], strict=True):
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
    helpers = [_start_helper(folder.path, share, formats) for share in shares[1:]]
    try:
        paths = folder.save_figures(((p.stem, p.figure()) for p in shares[0]), formats)
        for helper in helpers:
            paths += _finish_helper(helper)
    finally:
        for helper in helpers:
            _stop_helper(helper)
    return paths


# Drawing in other processes. Each helper is a fresh ``python -c`` that reads its plans from a
# pickle file: not multiprocessing, whose spawned children import the caller's main module
# again (a user's script, or ``python -m study``), and not a fork of a process running JAX.
_HELPER_CODE = "import sys; from study.plots import _helper_main; _helper_main(sys.argv[1])"


class _Helper(NamedTuple):
    process: subprocess.Popen
    plans_file: Path


def _start_helper(folder, plans: list[FigurePlan], formats: Sequence[str]) -> _Helper:
    handle, name = tempfile.mkstemp(prefix="study-figures-", suffix=".pickle")
    with os.fdopen(handle, "wb") as file:
        pickle.dump((str(folder), plans, tuple(formats)), file)
    package_root = str(Path(__file__).resolve().parents[1])  # where this ``study`` lives
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-c", _HELPER_CODE, name],
        env={**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return _Helper(process, Path(name))


def _finish_helper(helper: _Helper) -> list[Path]:
    """The paths a helper wrote, once it is done; its error if it failed."""
    out, err = helper.process.communicate()
    if helper.process.returncode != 0:
        lines = err.strip().splitlines() or [f"exit status {helper.process.returncode}"]
        raise RuntimeError(f"drawing figures in another process failed: {lines[-1]}")
    return [Path(line) for line in out.splitlines()]


def _stop_helper(helper: _Helper) -> None:
    if helper.process.poll() is None:  # this process failed or was interrupted first
        helper.process.kill()
        helper.process.communicate()
    helper.plans_file.unlink(missing_ok=True)


def _helper_main(plans_file: str) -> None:
    """A helper process: draw and save the pickled plans, print the paths written."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the process that started it
    with open(plans_file, "rb") as file:
        folder, plans, formats = pickle.load(file)
    os.unlink(plans_file)
    for path in results.save_figures(folder, ((p.stem, p.figure()) for p in plans), formats):
        print(path, flush=True)
