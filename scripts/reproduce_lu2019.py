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

(c) RAI against He on Lu et al.'s two other 1-D targets, x sin 5x and 1{x > 0} + 0.2 sin 5x
(``lu2019_targets.toml``), set as the |x| fit; each init's shares beside |x|'s, and RAI minus He
per target (Newcombe's interval, Fisher's or the z test, Holm over the rows).

Writes ``results/lu2019/``: ``summary.csv`` (born dead by init, offset, width, depth),
``collapse.csv``, ``targets.csv``, ``rai_vs_he.csv``, ``figures/``; the runs are in
``born_dead/``, ``abs_fit/`` and ``targets_fit/``.

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
TINY_TARGETS = ["model.depth=2", "train.steps=20", "train.log_every=10"]  # both inits
NEAR_CONSTANT_SHARE = 0.9
EVENTS = ("dead_init", "dead_end", "near_constant", "collapsed_or_near_constant")
FUNCTION_NAMES = {"abs": "|x|", "x_sin5x": "x sin 5x", "step_sin5x": "1{x > 0} + 0.2 sin 5x"}


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
    """Var of the regression targets the engine trained on (population variance, 1/n); ``runs``
    of one target function."""
    values = runs[analysis.setting_columns(runs)].iloc[0].to_dict()
    inputs = data.setting_inputs(values, seed)
    base = inputs[:, 0] - float(values["data.offset"])
    f = np.asarray(data.target_function(str(values["data.function"]), base))
    targets = float(values["data.target_scale"]) * f + float(values["data.target_shift"])
    return float(np.var(targets))


def collapse_table(runs: pd.DataFrame, seed: int, by=("model.init",)) -> pd.DataFrame:
    """Each event's share per group of ``by`` (a target function's own variance for the
    near-constant threshold)."""
    tables = []
    for _, part in runs.groupby("data.function", sort=False):
        variance = target_variance(part, seed)
        frame = part.assign(near_constant=part["final_loss"] >= NEAR_CONSTANT_SHARE * variance)
        frame["collapsed_or_near_constant"] = frame["dead_end"] | frame["near_constant"]
        for event in EVENTS:
            table = common.proportion_table(frame, list(by), event)
            table.insert(len(by), "event", event)
            table["target_variance"] = variance
            table["near_constant_threshold"] = NEAR_CONSTANT_SHARE * variance
            tables.append(table)
    return pd.concat(tables, ignore_index=True)


def rai_against_he(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """RAI minus He in P(dead at end) and P(collapsed or near-constant), per target: Newcombe's
    interval, Fisher's exact or the z test (:func:`study.analysis.two_proportion_test`), Holm
    over the rows. Two samples of 1000 networks each (RAI's and He's draws differ)."""
    rows = []
    for table in tables:
        for (function, event), part in table.groupby(["data.function", "event"], sort=False):
            inits = set(part["model.init"])
            if event not in ("dead_end", "collapsed_or_near_constant") or len(inits) < 2:
                continue  # (--tiny runs |x| with He alone)
            he, rai = (part.set_index("model.init").loc[init] for init in ("he_normal", "rai"))
            k1, n1, k2, n2 = int(he["k"]), int(he["n"]), int(rai["k"]), int(rai["n"])
            lo, hi = analysis.newcombe_interval(k1, n1, k2, n2)
            test, p = analysis.two_proportion_test(k1, n1, k2, n2)
            rows.append(
                dict(
                    function=function,
                    event=event,
                    p_he=k1 / n1,
                    p_rai=k2 / n2,
                    difference=k2 / n2 - k1 / n1,
                    lo=lo,
                    hi=hi,
                    test=test,
                    p=p,
                )
            )
    frame = pd.DataFrame(rows)
    frame["p_holm"] = analysis.holm(frame["p"])
    return frame


def init_bars(ax, table: pd.DataFrame, events: list[str]) -> None:
    """A bar per init and event (``table``: :func:`collapse_table`'s rows of one target), side
    by side, with their 95% Wilson intervals as error bars."""
    inits = sorted(table["model.init"].unique())
    style = common.plots.styles(inits)
    for i, init in enumerate(inits):
        part = table[table["model.init"] == init].set_index("event").reindex(events)
        xs = np.arange(len(events)) + (i - (len(inits) - 1) / 2) * 0.3
        name = {"he_normal": "He normal", "rai": "RAI"}.get(init, init)
        ax.bar(xs, part["p"], width=0.28, color=style[init]["color"], label=name)
        error = [part["p"] - part["p_lo"], part["p_hi"] - part["p"]]
        ax.errorbar(xs, part["p"], yerr=error, fmt="none", color="black", capsize=3)


def figure_collapse(table: pd.DataFrame, out) -> None:
    events = ["dead_init", "dead_end", "near_constant", "collapsed_or_near_constant"]
    labels = ["dead at init", "dead at end\n(constant)", "MSE >= 0.9 Var(y)", "either"]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    init_bars(ax, table, events)
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


def figure_targets(table: pd.DataFrame, out) -> None:
    """A panel per target: the share of runs dead at init, dead at the end, and collapsed or
    near-constant, He against RAI, with 95% Wilson intervals."""
    events = ["dead_init", "dead_end", "collapsed_or_near_constant"]
    labels = ["dead\nat init", "dead at end\n(constant)", "dead or\nMSE >= 0.9 Var(y)"]
    functions = list(dict.fromkeys(table["data.function"]))
    fig, axes = plt.subplots(
        1, len(functions), figsize=(3.4 * len(functions) + 1.6, 3.6), sharey=True, squeeze=False
    )
    for ax, function in zip(axes[0], functions, strict=True):
        init_bars(ax, table[table["data.function"] == function], events)
        ax.set_xticks(range(len(events)), labels, fontsize=8)
        ax.set_title(f"f(x) = {FUNCTION_NAMES.get(function, function)}", fontsize=9)
        ax.set_ylim(0, 1.05)
    axes[0, 0].set_ylabel("share of trained networks")
    n = int(table["n"].min())
    fig.suptitle(
        f"Width 2, depth 10 ReLU networks fit on [-1, 1]: He against RAI; n = {n} "
        "per bar; bars: 95% Wilson intervals",
        fontsize=9,
    )
    axes[0, -1].legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    common.save_figure(fig, out, "lu2019_targets_collapse")


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

    targets_folder = args.out / "targets_fit"
    target_runs, _ = common.run_sized("lu2019_targets.toml", targets_folder, args, TINY_TARGETS)
    seed = results.read_manifest(targets_folder).seed
    targets = collapse_table(target_runs, seed, by=("data.function", "model.init"))
    common.write_table(targets, args.out, "targets.csv")
    with_abs = collapse.assign(**{"data.function": "abs"})
    common.write_table(rai_against_he([with_abs, targets]), args.out, "rai_vs_he.csv")
    figure_targets(pd.concat([with_abs, targets], ignore_index=True), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
