"""Reproduction 1: the question's 2-1-1 network (``study/configs/question.toml``).

Measures, for sgd, momentum and adam at two learning rates: P(dead at init), P(dead at end), the
share of networks dead at init that ever revive (the claim: none), the same on standardized data,
leaky ReLU beside ReLU, a bias drawn U(-a, a) instead of 0, and the class every dead network
predicts with its accuracy. Writes ``results/question/``: ``summary.csv`` (a row per setting),
``revival.csv``, ``dead_networks.csv``, ``comparisons.csv`` (paired tests of the text's claims,
Holm-adjusted per family), ``leaky_inactive.csv`` (leaky ReLU networks whose unit is inactive at
init and at the end, per setting), ``figures/*.png``; the run itself is in ``run/``.

Usage: ``python scripts/reproduce_question.py [--tiny] [--out DIR] [--force]``
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import reproduce_common as common

from study import analysis

TINY = [
    "train.optimizer=adam",
    "data.standardize=false",
    "model.activation=relu",
    "train.steps=20",
    "train.log_every=10",
]
OPTIMIZERS = ["sgd", "momentum", "adam"]
NAMES = {"sgd": "SGD", "momentum": "SGD + momentum", "adam": "Adam"}


def categorical_points(ax, table, category, hue, y, order, *, label_format="{}", marker_fill=True):
    """Points with Wilson bars at ``category`` positions, dodged by ``hue`` level."""
    levels = sorted(table[hue].unique())
    style = common.plots.styles(levels)
    width = 0.6
    for i, level in enumerate(levels):
        part = table[table[hue] == level].set_index(category).reindex(order).dropna(subset=[y])
        shift = (i - (len(levels) - 1) / 2) * width / max(len(levels), 1)
        xs = np.array([order.index(c) for c in part.index]) + shift
        s = style[level]
        ax.errorbar(
            xs,
            part[y],
            yerr=[part[y] - part[f"{y}_lo"], part[f"{y}_hi"] - part[y]],
            fmt=s["marker"],
            color=s["color"],
            capsize=3,
            markerfacecolor=s["color"] if marker_fill else "white",
            label=label_format.format(level),
        )
    ax.set_xticks(range(len(order)), order)


def figure_optimizers(summary: pd.DataFrame, out) -> None:
    """P(dead at init) and at the end per optimizer and learning rate, raw and standardized."""
    rows = summary[(summary["model.activation"] == "relu") & (summary["model.bias_scale"] == 0.0)]
    order = [o for o in OPTIMIZERS if o in set(rows["train.optimizer"])]
    standardize_levels = sorted(rows["data.standardize"].unique())
    fig, axes = plt.subplots(
        1, len(standardize_levels), figsize=(5 * len(standardize_levels), 3.8), squeeze=False
    )
    for ax, standardized in zip(axes[0], standardize_levels, strict=True):
        part = rows[rows["data.standardize"] == standardized]
        long = []
        for when in ("init", "end"):
            piece = part[["train.optimizer", "train.learning_rate"]].copy()
            piece["series"] = [
                f"{when}, lr {lr:g}" for lr in part["train.learning_rate"].to_numpy()
            ]
            for suffix in ("", "_lo", "_hi"):
                piece[f"p{suffix}"] = part[f"p_dead_{when}{suffix}"].to_numpy()
            long.append(piece)
        categorical_points(ax, pd.concat(long), "train.optimizer", "series", "p", order)
        theory = part["p_dead_init_theory"].dropna()
        if len(theory):
            ax.axhline(theory.iloc[0], color="black", linestyle=":", label="closed form, init")
        data = "standardized (centered) data" if standardized else "raw data, features in [1, 3]"
        ax.set_title(f"{data}\nReLU, zero bias, n = {int(part['n_inits'].min())} per setting")
        ax.set_xticks(range(len(order)), [NAMES[o] for o in order])
        ax.set_xlabel("optimizer")
        ax.set_ylabel("P(network dead); bars: 95% Wilson intervals")
        ax.set_ylim(-0.02, max(0.5, float(part["p_dead_end_hi"].max()) + 0.05))
    axes[0][-1].legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    common.save_figure(fig, out, "question_optimizers")


def figure_bias_and_leaky(runs: pd.DataFrame, out) -> None:
    """P(unit dead or inactive) at init and at the end against the bias scale, ReLU and leaky."""
    frame = runs[
        (runs["train.optimizer"] == runs["train.optimizer"].iloc[-1])
        & (~runs["data.standardize"].astype(bool))
    ].copy()
    frame["inactive_init"] = frame["inactive_units_init_l1"] > 0
    frame["inactive_end"] = frame["inactive_units_end_l1"] > 0
    optimizer = frame["train.optimizer"].iloc[0]
    scales = sorted(frame["model.bias_scale"].unique())
    by = ["model.activation", "model.bias_scale", "train.learning_rate"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True, layout="constrained")
    for ax, when in zip(axes, ("init", "end"), strict=True):
        tables = []
        for activation, event, name in (
            ("relu", f"dead_{when}", "ReLU dead (= inactive)"),
            ("leaky_relu", f"inactive_{when}", "leaky ReLU inactive"),
        ):  # leaky ReLU dead: 0 by definition (its derivative is never 0), not drawn
            table = common.proportion_table(
                frame[frame["model.activation"] == activation], by, event
            )
            table["series"] = [f"{name}, lr {lr:g}" for lr in table["train.learning_rate"]]
            if when == "init":  # no step taken yet: the learning rate plays no part
                table = table[table["train.learning_rate"] == table["train.learning_rate"].min()]
                table["series"] = name
            tables.append(table)
        table = pd.concat(tables)
        table["position"] = [scales.index(v) for v in table["model.bias_scale"]]
        common.interval_lines(ax, table, "position", "p", "series")
        ax.set_xticks(range(len(scales)), [f"{v:g}" for v in scales])
        ax.set_xlabel("bias scale a (bias ~ U(-a, a); 0 = zero bias)")
        ax.set_title(f"at {'initialization' if when == 'init' else 'the end'} ({NAMES[optimizer]})")
        ax.legend(fontsize=7, frameon=False)
    axes[0].set_ylabel("P(the hidden unit is dead / inactive)")
    fig.suptitle(
        "dead: zero derivative on every input; inactive: pre-activation <= 0 on every input "
        "(leaky ReLU is never dead: not drawn);\n"
        f"raw data, n = {frame.groupby(by).size().min()} per point; bars: 95% Wilson intervals",
        fontsize=9,
    )
    common.save_figure(fig, out, "question_bias_leaky")


def revival_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Networks dead at init that revived, per setting and pooled over the ReLU settings."""
    relu = summary[summary["model.activation"] == "relu"]
    keys = ["data.standardize", "model.bias_scale", "train.optimizer", "train.learning_rate"]
    table = relu[keys].copy()
    table["n_dead_init"] = relu["k_dead_init"]
    table["n_revived"] = relu["k_revived_dead_init"]
    pooled = {k: "all" for k in keys}
    pooled.update(n_dead_init=int(table["n_dead_init"].sum()), n_revived=table["n_revived"].sum())
    table = pd.concat([table, pd.DataFrame([pooled])], ignore_index=True)
    table["p_revived"] = table["n_revived"] / table["n_dead_init"].where(table["n_dead_init"] > 0)
    table["p_revived_lo"], table["p_revived_hi"] = common.wilson(
        table["n_revived"], table["n_dead_init"]
    )
    return table


def dead_networks_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The class predicted by networks dead at the end, and their training accuracy."""
    dead = runs[runs["dead_end"].astype(bool) & (runs["model.activation"] == "relu")]
    keys = ["data.standardize", "model.bias_scale", "train.optimizer", "train.learning_rate"]
    return (
        dead.assign(
            all_positive=dead["predicted_positive"] == 1.0,
            all_negative=dead["predicted_positive"] == 0.0,
        )
        .groupby(keys, sort=True)
        .agg(
            n_dead_end=("dead_end", "size"),
            share_all_positive=("all_positive", "mean"),
            share_all_negative=("all_negative", "mean"),
            mean_accuracy=("final_accuracy", "mean"),
            min_accuracy=("final_accuracy", "min"),
            max_accuracy=("final_accuracy", "max"),
        )
        .reset_index()
    )


SETTING = ["data.standardize", "model.bias_scale", "train.optimizer", "train.learning_rate"]
# The columns of comparisons.csv, in order (``compare``'s and the families built here).
COMPARISON_COLUMNS = [
    "family", "by", *SETTING, "level_a", "level_b", "n_a", "k_a", "n_b", "k_b", "k_a_only",
    "k_b_only", "p_a", "p_b", "test", "p_value", "p_holm", "metric", "paired", "difference",
    "difference_lo", "difference_hi", "significant",
]  # fmt: skip
# The text's claim for leaky ReLU: the fewest networks inactive at the end among the sgd and
# momentum schedules are under momentum at this learning rate; every schedule is tested against it.
LEAKY_REFERENCE = ("momentum", 0.1)
ALPHA = 0.05


def with_inactive(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``inactive_init`` and ``inactive_end``: the (single) hidden unit's
    pre-activation is <= 0 on every input, at init and at the end."""
    return runs.assign(
        inactive_init=runs["inactive_units_init_l1"] > 0,
        inactive_end=runs["inactive_units_end_l1"] > 0,
    )


def leaky_inactive_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Leaky ReLU networks whose unit is inactive at init and at the end, per setting: counts of
    the valid networks, shares and 95% Wilson bounds (leaky ReLU is never dead, by definition;
    inactive is the event a ReLU unit would be dead for)."""
    leaky = with_inactive(runs[runs["model.activation"] == "leaky_relu"])
    table = None
    for when in ("init", "end"):
        name = f"inactive_{when}"
        part = common.proportion_table(leaky, SETTING, name)
        part = part.rename(columns={"k": f"k_{name}", "p": f"p_{name}"})
        part = part.rename(columns={"p_lo": f"p_{name}_lo", "p_hi": f"p_{name}_hi", "n": "n_valid"})
        table = part if table is None else table.merge(part, on=[*SETTING, "n_valid"])
    return table[[*SETTING, "n_valid", *table.columns.drop([*SETTING, "n_valid"])]]


def holm_family(rows: list[dict], family: str) -> pd.DataFrame:
    """The rows of one family with their Holm-adjusted p-values and ``significant`` at
    :data:`ALPHA` (empty if there are no rows)."""
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["p_holm"] = analysis.holm(table["p_value"])
    return table.assign(family=family, significant=table["p_holm"] < ALPHA)


def end_vs_init(runs: pd.DataFrame, event: str, family: str) -> pd.DataFrame:
    """``event`` at the end against at init (``{event}_init``, ``{event}_end``) in each setting
    of ``runs``, on the same networks; ``k_a_only``: networks with the event at init only (came
    back), ``k_b_only``: at the end only (lost in training)."""
    rows = [
        dict(zip(SETTING, values, strict=True))
        | {"by": "when", "level_a": "init", "level_b": "end", "metric": f"p_{event}"}
        | analysis.paired_proportions(part[f"{event}_init"], part[f"{event}_end"])
        for values, part in runs.groupby(SETTING, sort=True)
    ]
    return holm_family(rows, family)


def leaky_schedules(leaky: pd.DataFrame) -> pd.DataFrame:
    """Leaky ReLU, inactive at the end: every (optimizer, learning rate) against
    :data:`LEAKY_REFERENCE` in each (data, bias) cell, paired by initialization (the activation
    acts only in training, and every schedule starts from the same networks)."""
    rows = []
    for (standardize, bias), cell in leaky.groupby(SETTING[:2], sort=True):
        wide = cell.pivot(index="init", columns=SETTING[2:], values="inactive_end")
        if LEAKY_REFERENCE not in wide.columns:
            continue
        for schedule in (s for s in wide.columns if s != LEAKY_REFERENCE):
            row = {"by": "train.optimizer, train.learning_rate", "data.standardize": standardize}
            row |= {"model.bias_scale": bias, "level_a": "{} {:g}".format(*LEAKY_REFERENCE)}
            row |= {"level_b": "{} {:g}".format(*schedule), "metric": "p_inactive_end"}
            rows.append(row | analysis.paired_proportions(wide[LEAKY_REFERENCE], wide[schedule]))
    return holm_family(rows, "leaky schedules")


def bias_at_init(relu: pd.DataFrame) -> pd.DataFrame:
    """P(dead at init) under each bias scale against zero bias, raw and standardized data, the
    same weights with the bias draw scaled (:func:`study.analysis.compare`, paired). At init no
    step has been taken, so every schedule holds the same networks: the first one is used."""
    if relu["model.bias_scale"].nunique() < 2 or 0.0 not in set(relu["model.bias_scale"]):
        return pd.DataFrame()
    first = relu[SETTING[2:]].drop_duplicates().sort_values(SETTING[2:]).iloc[0]
    one = relu[(relu[SETTING[2:]] == first).all(axis=1)]
    table = analysis.compare(
        one.drop(columns=SETTING[2:]), "model.bias_scale", "p_dead_init", ALPHA,
        shared_draws=True, reference=0.0,
    )  # fmt: skip
    return table.assign(family="bias at init")


def comparisons(runs: pd.DataFrame) -> pd.DataFrame:
    """The claims the text makes, each a Holm family of paired tests on the same networks.

    ``end vs init`` (ReLU): P(dead at end) against P(dead at init) in each setting.
    ``standardize`` (ReLU): z-scored against raw data in each (bias, optimizer, learning rate)
    cell, P(dead at end) (:func:`study.analysis.compare`). ``bias at init`` (ReLU):
    :func:`bias_at_init`. ``leaky end vs init``: the leaky unit inactive at the end against at
    init in each setting. ``leaky schedules``: :func:`leaky_schedules`. McNemar's exact test
    and Newcombe's paired interval throughout."""
    valid = with_inactive(runs[~runs["diverged"].astype(bool)])
    relu = valid[valid["model.activation"] == "relu"]
    leaky = valid[valid["model.activation"] == "leaky_relu"]
    tables = [end_vs_init(relu, "dead", "end vs init")]
    if relu["data.standardize"].nunique() > 1:
        tables.append(
            analysis.compare(relu, "data.standardize", shared_draws=True).assign(
                family="standardize"
            )
        )
    tables += [bias_at_init(relu), end_vs_init(leaky, "inactive", "leaky end vs init")]
    tables.append(leaky_schedules(leaky))
    table = pd.concat([t for t in tables if not t.empty], ignore_index=True)
    return table[COMPARISON_COLUMNS]


def main(argv=None) -> int:
    args = common.parse_args("question", __doc__.splitlines()[0], argv)
    common.theme()
    runs, summary = common.run_sized("question.toml", args.out / "run", args, TINY)
    common.write_table(summary, args.out, "summary.csv")
    common.write_table(revival_table(summary), args.out, "revival.csv")
    common.write_table(dead_networks_table(runs), args.out, "dead_networks.csv")
    common.write_table(comparisons(runs), args.out, "comparisons.csv")
    common.write_table(leaky_inactive_table(runs), args.out, "leaky_inactive.csv")
    figure_optimizers(summary, args.out)
    figure_bias_and_leaky(runs, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
