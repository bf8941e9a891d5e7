"""The figures' drawing: one function per kind of figure, from the small tables it shows.

Every figure uses one style: seaborn's ``ticks`` theme, the ``colorblind`` palette, and for each
series a marker and a line style too, so that the figures stay readable in grayscale. Intervals are
95% Wilson bands; closed forms are black dotted lines, and proved bounds (where no exact value is
known) black hatched bands. The number of initializations per setting is in every title.

Figures (issue 4): (a)/(b) :func:`plot_proportion_vs`, P(dead) at init and at the end against the
data offset or the init range; (c) :func:`plot_survival`, survival curves against the training
step; (d) :func:`plot_heatmap`, P(dead at end) over offset x init range; (e)
:func:`plot_born_dead_vs_depth`, P(born dead) against depth with the one-ray closed form; and
:func:`plot_curves`, a run's error and dead share against the step; :func:`plot_auroc`, how well
each plasticity metric predicts failing the probe or death at the end, against the step. Each
returns a matplotlib figure laid out by :mod:`study.figure_layout`. These functions only draw:
every number comes from :mod:`study.analysis` or :mod:`study.theory`. matplotlib and seaborn are
imported inside them, so that importing this module does not load them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from study import theory
from study.figure_layout import COLORBAR_MARGIN_IN, GAP_IN, HEATMAP_GAP_IN, fixed_layout

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
THEORY_STYLE: dict[str, Any] = {"color": "black", "linestyle": ":", "linewidth": 1.4, "marker": "x"}
# Proved bounds where no exact value is known: a hatched band between them, no fill.
BOUNDS_STYLE = {"facecolor": "none", "edgecolor": "black", "hatch": "///", "linewidth": 0.6}
BOUNDS_LABEL = "proved bounds"
BAND_ALPHA = 0.2

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


# What a reader sees for a setting key or a text value in titles, legends and ticks (issue 27:
# "leaky ReLU", not leaky_relu); file names keep SHORT and fmt.
KEY_NAMES = {
    **SHORT,
    "model.init_range": "init range",
    "model.init": "init",
    "model.bias_scale": "bias scale",
    "train.learning_rate": "learning rate",
    "train.momentum": "momentum",
    "data.standardize": "standardized",
}
VALUE_NAMES = {
    "relu": "ReLU",
    "leaky_relu": "leaky ReLU",
    "elu": "ELU",
    "gelu": "GELU",
    "silu": "SiLU",
    "crelu": "CReLU",
    "he_normal": "He normal",
    "he_uniform": "He uniform",
    "glorot_uniform": "Glorot uniform",
    "kaiming_uniform": "Kaiming uniform",
    "rai": "RAI",
    "sgd": "SGD",
    "momentum": "SGD + momentum",
    "nesterov": "Nesterov",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
}


def _short(name: str | None) -> str:
    """The name a reader sees for a setting key, for a panel's title or a legend."""
    return KEY_NAMES.get(name, name) if name else ""


def shown(value) -> str:
    """A setting's value as a reader sees it: :data:`VALUE_NAMES` for text, :func:`fmt` else."""
    if isinstance(value, str):
        return VALUE_NAMES.get(value, value)
    return fmt(value)


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
    return ", ".join(f"{_short(k)} = {shown(v)}" for k, v in fixed.items())


def fmt(value) -> str:
    """A setting's value as titles, legends and file names show it (floats in ``g`` form)."""
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
    top = _proportion_top(summary)
    for j, panel in enumerate(panels):
        table = _select(summary, col, panel)
        for i, (metric, when) in enumerate((("p_dead_init", "at init"), ("p_dead_end", "at end"))):
            ax = axes[i, j]
            for level in hue_levels:
                rows = table if level is None else table[table[hue] == level]
                _draw_proportion(ax, rows.sort_values(x), x, metric, shown(level), look[level])
            if x == "model.init_range":
                ax.set_xscale("log")
            ax.set_ylim(-0.02 * top, 1.02 * top)
            ax.set_xlabel(label(x) if i == 1 else "")
            ax.set_ylabel(f"P(network dead) {when}" if j == 0 else "")
            if panel is not None:
                ax.set_title(f"{_short(col)} = {shown(panel)}" if i == 0 else "")
    legend = _legend(fig, axes[0, -1], hue)
    base = f"P(dead) against {_short(x)}" + (f" (y axis zoomed to [0, {top:g}])" if top < 1 else "")
    title = fig.suptitle(_title(base, summary, fixed or {}))
    fixed_layout(fig, axes, title=title, legend=legend, panel_titles=col in summary)
    return fig


def _proportion_top(summary: pd.DataFrame) -> float:
    """The probability axis' upper end: 1, or the next 0.05 above everything drawn (bands,
    closed forms, bounds) when that stays below 0.25 (values of 0.01-0.05 are flat on [0, 1])."""
    drawn = ["p_dead_init_hi", "p_dead_end_hi", "p_dead_init_theory", "p_dead_init_upper"]
    values = summary[[c for c in drawn if c in summary]].to_numpy(dtype=float)
    highest = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    if highest >= 0.25:
        return 1.0
    return float(np.ceil((highest + 1e-9) / 0.05) * 0.05)


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
        title=_short(hue),
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        frameon=False,
    )


def plot_survival(
    curves: pd.DataFrame, hue: str, col: str | None = None, fixed: dict | None = None
) -> Figure:
    """(c): fraction of networks not yet dead for good against the training step, and below it
    the hazard (deaths per step among the networks still alive).

    ``curves`` is :func:`study.analysis.survival`'s table; a line per ``hue`` level with its
    Wilson band, a panel per ``col`` level. The step axis is linear up to the first logged step
    and logarithmic beyond it (most deaths come first); the survival axis is zoomed to the
    curves' range when they all stay above one half.
    """
    import matplotlib.pyplot as plt

    _apply_theme()
    panels = _panels(curves, col)
    hue_levels = sorted(curves[hue].unique())
    look = styles(hue_levels)
    fig, axes = plt.subplots(
        2,
        len(panels),
        figsize=(3.6 * len(panels) + 1.2, 5.6),
        sharex="col",
        sharey="row",
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 2]},
    )
    bottom = _survival_floor(curves)
    for j, panel in enumerate(panels):
        ax, below = axes[0, j], axes[1, j]
        table = _select(curves, col, panel)
        for level in hue_levels:
            rows = table[table[hue] == level].sort_values("step")
            if not rows.empty:
                _survival_lines(ax, below, rows, shown(level), look[level])
        ax.set_ylim(bottom, 1.0 + (1.0 - bottom) * 0.02)
        first = table.loc[table["step"] > 0, "step"]
        if len(first):
            below.set_xscale("symlog", linthresh=float(first.min()), linscale=0.5)
            below.set_xlim(left=0)
        below.set_xlabel(label("step"))
        ax.set_ylabel("fraction of networks alive" if j == 0 else "")
        below.set_ylabel("hazard: deaths per step\nper network alive" if j == 0 else "")
        if panel is not None:
            ax.set_title(f"{_short(col)} = {shown(panel)}")
    axes[1, 0].set_ylim(bottom=0)  # (once every panel is drawn: set_ylim ends autoscaling)
    n_text = f"n = {int(curves['n_valid'].min())}-{int(curves['n_valid'].max())} runs per curve"
    if curves["n_valid"].nunique() == 1:
        n_text = f"n = {int(curves['n_valid'].iloc[0])} initializations per curve"
    title = "Survival: networks not yet dead for good, and the hazard of dying\n" + n_text
    if fixed:
        title += "\n" + _fixed_text(fixed)
    legend = _legend(fig, axes[0, -1], hue)
    fixed_layout(fig, axes, title=fig.suptitle(title), legend=legend, panel_titles=col is not None)
    return fig


def _survival_lines(ax, below, rows: pd.DataFrame, name: str, look: dict) -> None:
    """One curve's survival (``ax``) and hazard (``below``) with their Wilson bands; a curve
    with no death after step 0 gets no hazard band (its upper bound, about 4/n per step, would
    fill the panel with a band around a line at 0)."""
    died = bool((rows["hazard"].fillna(0) > 0).any())
    style = {**look, "markevery": max(len(rows) // 8, 1)}
    for axis, value, where in ((ax, "alive", "post"), (below, "hazard", "pre")):
        if axis is ax or died:
            lo, hi = rows[f"{value}_lo"], rows[f"{value}_hi"]
            band = {"color": look["color"], "alpha": BAND_ALPHA, "linewidth": 0, "step": where}
            axis.fill_between(rows["step"], lo, hi, **band)
        axis.step(rows["step"], rows[value], where=where, label=name, **style)


def _survival_floor(curves: pd.DataFrame) -> float:
    """The survival axis' lower end: 0 (a little below), or the multiple of 0.05 at least 0.02
    below the lowest band when every band stays above one half (differences of a few percent
    would be flat lines on [0, 1])."""
    lowest = float(np.nanmin(curves["alive_lo"])) if len(curves) else 0.0
    if not lowest > 0.5:
        return -0.02
    return max(np.floor((lowest - 0.02) * 20) / 20, 0.0)


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
    panels, zero = _nonzero_panels(summary, col, value)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels) + 1.0, 3.6), squeeze=False)
    for j, panel in enumerate(panels):
        ax = axes[0, j]
        table = _select(summary, col, panel).pivot_table(index=y, columns=x, values=value)
        table = table.sort_index(ascending=False)
        sns.heatmap(
            table,
            ax=ax,
            vmin=0,
            vmax=1,
            cmap="viridis",
            annot=table.map(cell_text).to_numpy(),
            fmt="",
            cbar=j == len(panels) - 1,
            cbar_kws={"label": "P(network dead) at end"},
            xticklabels=[shown(v) for v in table.columns],
            yticklabels=[shown(v) for v in table.index[::-1]],
        )
        ax.set_xlabel(label(x))
        ax.set_ylabel(label(y) if j == 0 else "")
        if panel is not None:
            ax.set_title(f"{_short(col)} = {shown(panel)}")
    base = "P(dead at end of training)"
    if zero:
        names = ", ".join(shown(level) for level in zero)
        base += f"; not drawn, 0 in every cell: {_short(col)} = {names}"
    title = fig.suptitle(_title(base, summary, fixed or {}))
    # each panel has its own tick labels on the left: a wider gap
    fixed_layout(
        fig,
        axes,
        title=title,
        gap=HEATMAP_GAP_IN,
        margin=COLORBAR_MARGIN_IN,
        panel_titles=col in summary,
    )
    return fig


def cell_text(value: float) -> str:
    """A heatmap cell's text: two decimals, three below 0.01 (0.004 is not "0.00"), and "0"
    for exactly none."""
    if value == 0:
        return "0"
    return f"{value:.3f}" if abs(value) < 0.01 else f"{value:.2f}"


def _nonzero_panels(summary: pd.DataFrame, col: str | None, value: str) -> tuple[list, list]:
    """The panel levels to draw, and those left out: a panel whose every cell is exactly 0 (an
    activation that cannot die, or none died) says nothing the title's sentence cannot, unless
    every panel is such."""
    panels = _panels(summary, col)
    zero = [level for level in panels if (_select(summary, col, level)[value] == 0).all()]
    if len(zero) == len(panels):
        return panels, []
    return [level for level in panels if level not in zero], zero


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
    fixed_layout(fig, np.array([[ax]]), title=title, legend=legend, panel_titles=False)
    return fig


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
            ax.plot(rows["step"], rows[name], label=shown(level), **style)
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
    fixed_layout(
        fig,
        axes,
        title=fig.suptitle(title),
        legend=legend,
        panel_titles=False,
        gap=GAP_IN * 2.5,
    )
    return fig


def plot_auroc(table: pd.DataFrame, fixed: dict | None = None) -> Figure:
    """How well each metric predicts an outcome at the end: its AUROC against the logged step, a
    panel per outcome, a line per metric (``table``: :func:`study.predictors.auroc_curves`)."""
    import matplotlib.pyplot as plt

    _apply_theme()
    outcomes = list(dict.fromkeys(table["outcome"]))
    size = (4.8 * len(outcomes), 3.8)
    fig, axes = plt.subplots(1, len(outcomes), figsize=size, sharey=True, squeeze=False)
    metrics = list(dict.fromkeys(table["metric"]))
    look = styles(metrics)
    for ax, outcome in zip(axes[0], outcomes, strict=True):
        for metric in metrics:
            rows = table[(table["outcome"] == outcome) & (table["metric"] == metric)]
            rows = rows[rows["auroc"].notna()].sort_values("step")
            if rows.empty:
                continue
            style = {**look[metric], "markevery": max(len(rows) // 8, 1)}
            ax.plot(rows["step"], rows["auroc"], label=metric, **style)
        ax.axhline(0.5, color="black", linestyle=":", linewidth=0.8)
        ax.set_ylim(0, 1)
        ax.set_title(outcome)
        ax.set_xlabel("step (examples seen, for a stream)")
    axes[0, 0].set_ylabel("AUROC (0.5: no better than chance)")
    title = "Which metric predicts the outcome at the end: AUROC at each logged step"
    if fixed:
        title += "\n" + _fixed_text(fixed)
    handles, labels = axes[0, -1].get_legend_handles_labels()
    legend = axes[0, -1].legend(handles, labels, title="metric", loc="upper left",
                                bbox_to_anchor=(1.02, 1.0), frameon=False)  # fmt: skip
    fixed_layout(fig, axes, title=fig.suptitle(title), legend=legend, panel_titles=True)
    return fig
