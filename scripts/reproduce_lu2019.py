"""Reproduction 3: Lu, Shin, Su and Karniadakis (2019), arXiv 1903.06733.

(a) P(a deep narrow ReLU network is born dead) against depth 1..20, a line per width (2, 3, 4, 5,
10), 1-D inputs on [-1, 1] with He initialization, beside the one-ray closed form
1 - (1 - 2^-N)^L; the same on inputs on one ray ([1, 3]), where the formula is exact; then their
randomized asymmetric initialization (RAI) on the same grid (``lu2019.toml``). The depth-L value
is read from the first L layers of depth-20 networks (same law as a depth-L network; see the
config), so the points of one curve are nested, not independent.

(b) Their |x| example (``lu2019_abs.toml``): width 2, depth 10, trained many times; the share of
runs that collapse to a constant. Criterion: the network is dead at the end (some hidden layer
has every unit dead on all training inputs, so the output is exactly constant on the data). Also
reported: near-constant output, final MSE >= 0.9 Var(targets) (less than 10% of the variance
explained; the best constant has MSE = Var(targets)).

Writes ``results/lu2019/``: ``summary.csv`` (born dead by init, offset, width, depth),
``collapse.csv``, ``figures/``; the runs are in ``born_dead/`` and ``abs_fit/``.

Usage: ``python scripts/reproduce_lu2019.py [--tiny] [--out DIR] [--force]``
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import reproduce_common as common

from study import analysis, data, results, theory

TINY_BORN_DEAD = ["model.depth=3", "model.width=2", "model.init=he_normal"]
TINY_ABS = ["model.depth=2", "model.init=he_normal", "train.steps=20", "train.log_every=10"]
NEAR_CONSTANT_SHARE = 0.9


def born_dead_by_depth(runs: pd.DataFrame) -> pd.DataFrame:
    """P(born dead) for every depth L up to the runs' depth, from the per-layer dead counts."""
    depth = len(analysis.layer_columns(runs, "init"))
    keys = ["model.init", "data.offset", "model.width"]
    layer_dead = np.stack(
        [runs[f"dead_units_init_l{k}"] == runs["model.width"] for k in range(1, depth + 1)], axis=1
    )
    dead_by_depth = np.logical_or.accumulate(layer_dead, axis=1)  # dead within the first L layers
    rows = []
    for key, index in runs.groupby(keys, sort=True).groups.items():
        dead = dead_by_depth[runs.index.get_indexer(index)]
        for layers in range(1, depth + 1):
            rows.append((*key, layers, int(dead[:, layers - 1].sum()), len(dead)))
    table = pd.DataFrame(rows, columns=[*keys, "depth", "k", "n"])
    table["p_born_dead"] = table["k"] / table["n"]
    table["p_born_dead_lo"], table["p_born_dead_hi"] = common.wilson(table["k"], table["n"])
    pairs = zip(table["model.width"], table["depth"], strict=True)
    table["p_ray_formula"] = [theory.p_dead_ray(int(w), int(d)) for w, d in pairs]
    lo, hi = table["p_born_dead_lo"], table["p_born_dead_hi"]
    table["formula_in_interval"] = (lo <= table["p_ray_formula"]) & (table["p_ray_formula"] <= hi)
    return table


# What Lu et al. state at depth 10 (about, above or below a value), with the source.
PUBLISHED = common.ROOT / "results" / "lu2019" / "published.csv"
MARKERS = {"about": "D", "above": "^", "below": "v"}


def published_marks(ax, init: str, offset: float) -> None:
    """Lu et al.'s statements as black marks: a diamond for "about", a triangle pointing the way
    of "above" or "below"."""
    published = pd.read_csv(PUBLISHED)
    rows = published[(published["model.init"] == init) & (published["data.offset"] == offset)]
    for i, (_, row) in enumerate(rows.iterrows()):
        label = "Lu et al. at depth 10 (about / above / below)" if i == 0 else None
        ax.plot(row["depth"], row["value"], MARKERS[row["statement"]], color="black",
                markerfacecolor="none", markersize=7, label=label)  # fmt: skip
        ax.annotate(f"N = {row['model.width']}", (row["depth"], row["value"]), fontsize=7,
                    xytext=(5, 0), textcoords="offset points", va="center")  # fmt: skip


def figure_born_dead(table: pd.DataFrame, out) -> None:
    inits = sorted(table["model.init"].unique())
    offsets = sorted(table["data.offset"].unique())
    fig, axes = plt.subplots(
        len(inits),
        len(offsets),
        figsize=(5 * len(offsets), 3.8 * len(inits)),
        squeeze=False,
        sharex=True,
        sharey=True,
        layout="constrained",
    )
    names = {"he_normal": "He normal, zero bias", "rai": "RAI (Lu et al.)"}
    for row, init in enumerate(inits):
        for col, offset in enumerate(offsets):
            ax = axes[row][col]
            part = table[(table["model.init"] == init) & (table["data.offset"] == offset)]
            common.interval_lines(
                ax, part, "depth", "p_born_dead", "model.width", label_format="N = {}", band=True
            )
            style = common.plots.styles(sorted(part["model.width"].unique()))
            for width, s in style.items():
                depths = np.arange(1, part["depth"].max() + 1)
                formula = [theory.p_dead_ray(int(width), int(d)) for d in depths]
                ax.plot(depths, formula, color=s["color"], ls=":", lw=1.2)
            published_marks(ax, init, offset)
            inputs = "x in [-1, 1]" if offset == 0 else f"x in [{offset - 1:g}, {offset + 1:g}]"
            ax.set_title(
                f"{names.get(init, init)}, {inputs}\nn = {int(part['n'].min())} per width; "
                "bands: 95% Wilson intervals",
                fontsize=9,
            )
            ax.set_xlabel("hidden layers L")
            ax.set_ylabel("P(born dead)")
            ax.set_xticks(range(0, int(part["depth"].max()) + 1, 5))
    axes[0][-1].plot([], [], "k:", label="1 - (1 - 2^-N)^L (one ray)")
    entries: dict = {}  # one legend for the figure: every panel's entries, each once
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    axes[0][-1].legend(list(entries.values()), list(entries), fontsize=8, frameon=False,
                       loc="upper left", bbox_to_anchor=(1.0, 1.0))  # fmt: skip
    common.save_figure(fig, out, "lu2019_born_dead_vs_depth")


def target_variance(runs: pd.DataFrame, seed: int) -> float:
    """Var of the regression targets the engine trained on (population variance, 1/n)."""
    values = runs[analysis.setting_columns(runs)].iloc[0].to_dict()
    inputs = data.setting_inputs(values, seed)
    base = inputs[:, 0] - float(values["data.offset"])
    targets = float(values["data.target_scale"]) * np.abs(base) + float(values["data.target_shift"])
    return float(np.var(targets))


def collapse_table(runs: pd.DataFrame, seed: int) -> pd.DataFrame:
    variance = target_variance(runs, seed)
    frame = runs.assign(
        near_constant=runs["final_loss"] >= NEAR_CONSTANT_SHARE * variance,
    )
    frame["collapsed_or_near_constant"] = frame["dead_end"] | frame["near_constant"]
    tables = []
    for event in ("dead_init", "dead_end", "near_constant", "collapsed_or_near_constant"):
        table = common.proportion_table(frame, ["model.init"], event)
        table.insert(1, "event", event)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    table["target_variance"] = variance
    table["near_constant_threshold"] = NEAR_CONSTANT_SHARE * variance
    return table


def figure_collapse(table: pd.DataFrame, out) -> None:
    events = ["dead_init", "dead_end", "near_constant", "collapsed_or_near_constant"]
    labels = ["dead at init", "dead at end\n(constant)", "MSE >= 0.9 Var(y)", "either"]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    inits = sorted(table["model.init"].unique())
    style = common.plots.styles(inits)
    for i, init in enumerate(inits):
        part = table[table["model.init"] == init].set_index("event").reindex(events)
        xs = np.arange(len(events)) + (i - (len(inits) - 1) / 2) * 0.3
        name = {"he_normal": "He normal", "rai": "RAI"}.get(init, init)
        ax.bar(xs, part["p"], width=0.28, color=style[init]["color"], label=name)
        ax.errorbar(
            xs,
            part["p"],
            yerr=[part["p"] - part["p_lo"], part["p_hi"] - part["p"]],
            fmt="none",
            color="black",
            capsize=3,
        )
    ax.axhline(0.9, color="black", ls=":", label="Lu et al.: > 90% collapse (He)")
    ax.set_xticks(range(len(events)), labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of trained networks")
    ax.set_title(
        f"fit |x| on [-1, 1], width 2, depth 10; n = {int(table['n'].min())} per init; "
        "bars: 95% Wilson intervals",
        fontsize=9,
    )
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    common.save_figure(fig, out, "lu2019_abs_collapse")


def main(argv=None) -> int:
    args = common.parse_args("lu2019", __doc__.splitlines()[0], argv)
    common.theme()
    runs, _ = common.run_sized("lu2019.toml", args.out / "born_dead", args, TINY_BORN_DEAD)
    born_dead = born_dead_by_depth(runs)
    common.write_table(born_dead, args.out, "summary.csv")
    figure_born_dead(born_dead, args.out)

    abs_folder = args.out / "abs_fit"
    abs_runs, _ = common.run_sized("lu2019_abs.toml", abs_folder, args, TINY_ABS)
    collapse = collapse_table(abs_runs, results.read_manifest(abs_folder).seed)
    common.write_table(collapse, args.out, "collapse.csv")
    figure_collapse(collapse, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
