"""Reproduction 5: Sokar, Agarwal, Castro and Evci (2023), the dormant-neuron score.

For every activation, the share of hidden units that are tau-dormant (score E|h_i| / mean_k E|h_k|
<= tau, per layer) for tau in {0, 0.025, 0.1}, beside the share that are strictly dead (zero
derivative on every training input) and inactive (pre-activation <= 0 on every input), at init and
after training (``sokar2023.toml``). Shares are means over networks of (units / all hidden units),
with 95% normal intervals from the spread over networks. Two regimes: the
question's positive data (``sokar2023.toml``: a collapse regime, many units silent at init) and
centered data (``sokar2023_benign.toml``: a benign control). Writes ``results/sokar2023/``:
``summary.csv`` (a row per regime, activation and tau), ``orderings.csv`` (activations ordered by
their 0.1-dormant share after training, each against the next, paired t tests over the same
networks, Holm-adjusted per regime and measure) and ``figures/``.

Usage: ``python scripts/reproduce_sokar2023.py [--tiny] [--out DIR] [--force]``
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import pandas as pd
import reproduce_common as common

from study import analysis

TINY = ["model.activation=relu", "train.steps=20", "train.log_every=10"]
ORDER = ["relu", "leaky_relu", "elu", "gelu", "silu", "softplus", "tanh"]


def unit_shares(runs: pd.DataFrame) -> pd.DataFrame:
    """A row per (activation, tau): shares of hidden units dead, inactive, dormant, intervals."""
    depth = len(analysis.layer_columns(runs, "init"))
    units = runs["model.width"] * depth
    frame = runs.copy()
    keys = ["model.activation", "train.dormant_tau"]
    measures = []
    for when in ("init", "end"):
        for kind in ("dead", "inactive", "dormant"):
            columns = [f"{kind}_units_{when}_l{k}" for k in range(1, depth + 1)]
            name = f"{kind}_{when}"
            frame[name] = frame[columns].sum(axis=1) / units
            measures.append(name)
    table = None
    for name in measures:
        part = common.mean_table(frame, keys, name).rename(
            columns={"mean": name, "mean_lo": f"{name}_lo", "mean_hi": f"{name}_hi"}
        )
        table = part if table is None else table.merge(part.drop(columns="n"), on=keys)
    table = table.rename(columns={"n": "n_networks"})
    network = common.proportion_table(frame, keys, "dead_end")
    table = table.merge(
        network[keys + ["p", "p_lo", "p_hi"]].rename(
            columns={"p": "p_network_dead_end", "p_lo": "p_network_dead_end_lo"}
        ),
        on=keys,
    ).rename(columns={"p_hi": "p_network_dead_end_hi"})
    order = {a: i for i, a in enumerate(ORDER)}
    table = table.sort_values(
        ["model.activation", "train.dormant_tau"], key=lambda c: c.map(order).fillna(c)
    )
    return table.reset_index(drop=True)


# The two regimes: the folder of each run, its config, and its name in the tables.
REGIMES = {
    "run": ("sokar2023.toml", "positive data (collapse)"),
    "benign": ("sokar2023_benign.toml", "centered data (benign)"),
}
LABELS = {"relu": "ReLU", "leaky_relu": "leaky ReLU", "elu": "ELU", "gelu": "GELU",
          "silu": "SiLU", "softplus": "softplus", "tanh": "tanh"}  # fmt: skip


def orderings(runs: pd.DataFrame, tau: float = 0.1) -> pd.DataFrame:
    """Activations ordered by their mean share of units ``tau``-dormant after training, and by
    their share dead, each against the next in the order: the paired difference over the same
    initializations (shared draws: the activation acts only in training, so every activation
    starts from the same weights) with its 95% t interval and test, Holm-adjusted per measure."""
    depth = len(analysis.layer_columns(runs, "end"))
    part = runs[runs["train.dormant_tau"] == tau]
    rows = []
    for measure in ("dormant", "dead"):
        columns = [f"{measure}_units_end_l{k}" for k in range(1, depth + 1)]
        share = part[columns].sum(axis=1) / (part["model.width"] * depth)
        wide = part.assign(share=share).pivot(
            index="init", columns="model.activation", values="share"
        )
        order = wide.mean().sort_values(ascending=False).index
        threshold = tau if measure == "dormant" else None
        family = []
        for first, second in zip(order[:-1], order[1:], strict=True):
            d, lo, hi, p = analysis.paired_t_test(wide[first] - wide[second])
            family.append({"measure": f"{measure} at end", "tau": threshold,
                           "higher": first, "lower": second, "share_higher": wide[first].mean(),
                           "share_lower": wide[second].mean(), "difference": d,
                           "difference_lo": lo, "difference_hi": hi, "test": "paired t",
                           "p_value": p})  # fmt: skip
        holm = analysis.holm([row["p_value"] for row in family])
        rows += [row | {"p_holm": h} for row, h in zip(family, holm, strict=True)]
    return pd.concat([pd.DataFrame(rows), growth(part, depth)], ignore_index=True)


def growth(part: pd.DataFrame, depth: int) -> pd.DataFrame:
    """Each activation's share of dormant units after training against its share at init, on
    the same networks (Sokar et al.: dormancy grows over training): paired t, Holm over the
    activations; ``higher`` is the end, ``lower`` the start."""
    rows = []
    for activation, own in part.groupby("model.activation", sort=False):
        share = {
            when: own[[f"dormant_units_{when}_l{k}" for k in range(1, depth + 1)]].sum(axis=1)
            / (own["model.width"] * depth)
            for when in ("init", "end")
        }
        d, lo, hi, p = analysis.paired_t_test(share["end"] - share["init"])
        rows.append({"measure": "dormant growth", "tau": own["train.dormant_tau"].iloc[0],
                     "higher": f"{activation} at end", "lower": f"{activation} at init",
                     "share_higher": share["end"].mean(), "share_lower": share["init"].mean(),
                     "difference": d, "difference_lo": lo, "difference_hi": hi,
                     "test": "paired t", "p_value": p})  # fmt: skip
    table = pd.DataFrame(rows)
    table["p_holm"] = analysis.holm(table["p_value"])
    return table


def figure(table: pd.DataFrame, out) -> None:
    activations = [a for a in ORDER if a in set(table["model.activation"])]
    taus = sorted(table["train.dormant_tau"].unique())
    series = [("dead (zero gradient)", "dead"), ("inactive (z <= 0)", "inactive")]
    series += [(f"dormant, tau = {tau:g}", ("dormant", tau)) for tau in taus]
    style = common.plots.styles([name for name, _ in series])
    regimes = list(dict.fromkeys(table["regime"]))
    fig, axes = plt.subplots(
        len(regimes),
        2,
        figsize=(11, 4.2 * len(regimes)),
        sharey="row",
        squeeze=False,
        layout="constrained",
    )  # fmt: skip; own y per regime
    for row, regime in enumerate(regimes):
        for ax, when in zip(axes[row], ("init", "end"), strict=True):
            _panel(ax, table[table["regime"] == regime], series, style, when, activations)
            ax.set_title(f"{regime}, {ax.get_title()}", fontsize=9)
        axes[row][0].set_ylabel("share of hidden units")
    axes[0][1].legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("Dormant beside dead units; bars: 95% intervals over networks", fontsize=10)
    common.save_figure(fig, out, "sokar2023_dormant_vs_dead")


def _panel(ax, table, series, style, when, activations) -> None:
    """One regime at init or after training: every measure per activation."""
    for i, (name, what) in enumerate(series):
        if isinstance(what, tuple):
            part = table[table["train.dormant_tau"] == what[1]]
            column = f"dormant_{when}"
        else:  # dead and inactive do not depend on tau, which measures the same networks
            part = table.drop_duplicates("model.activation")
            column = f"{what}_{when}"
        part = part.set_index("model.activation").reindex(activations)
        xs = [activations.index(a) + (i - (len(series) - 1) / 2) * 0.14 for a in part.index]
        s = style[name]
        ax.errorbar(
            xs,
            part[column],
            yerr=[part[column] - part[f"{column}_lo"], part[f"{column}_hi"] - part[column]],
            fmt=s["marker"],
            color=s["color"],
            capsize=2,
            markersize=4,
            label=name,
        )
    ax.set_xticks(range(len(activations)), [LABELS[a] for a in activations], rotation=30)
    ax.set_title(
        f"{'at initialization' if when == 'init' else 'after training'} "
        f"(n = {int(table['n_networks'].min())} networks per point)",
        fontsize=9,
    )


def main(argv=None) -> int:
    args = common.parse_args("sokar2023", __doc__.splitlines()[0], argv)
    common.theme()
    tables, tests = [], []
    for folder, (config, regime) in REGIMES.items():
        runs, _ = common.run_sized(config, args.out / folder, args, TINY)
        tables.append(unit_shares(runs).assign(regime=regime))
        tests.append(orderings(runs).assign(regime=regime))
    table = pd.concat(tables, ignore_index=True)
    table = table[["regime", *table.columns.drop("regime")]]
    common.write_table(table, args.out, "summary.csv")
    tests_table = pd.concat(tests, ignore_index=True)
    common.write_table(tests_table[["regime", *tests_table.columns.drop("regime")]], args.out,
                       "orderings.csv")  # fmt: skip
    figure(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
