"""Reproduction 5: Sokar, Agarwal, Castro and Evci (2023), the dormant-neuron score.

For every activation, the share of hidden units that are tau-dormant (score E|h_i| / mean_k E|h_k|
<= tau, per layer) for tau in {0, 0.025, 0.1}, beside the share that are strictly dead (zero
derivative on every training input) and inactive (pre-activation <= 0 on every input), at init and
after training (``sokar2023.toml``). Shares are means over networks of (units / all hidden units),
with 95% normal intervals from the spread over networks. Writes ``results/sokar2023/``:
``summary.csv`` (a row per activation and tau), ``figures/``.

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


def figure(table: pd.DataFrame, out) -> None:
    activations = [a for a in ORDER if a in set(table["model.activation"])]
    taus = sorted(table["train.dormant_tau"].unique())
    series = [("dead (zero gradient)", "dead"), ("inactive (z <= 0)", "inactive")]
    series += [(f"dormant, tau = {tau:g}", ("dormant", tau)) for tau in taus]
    style = common.plots.styles([name for name, _ in series])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, when in zip(axes, ("init", "end"), strict=True):
        for i, (name, what) in enumerate(series):
            if isinstance(what, tuple):
                part = table[table["train.dormant_tau"] == what[1]]
                column = f"dormant_{when}"
            else:  # dead and inactive do not depend on tau: pool the tau settings' networks
                part = table.groupby("model.activation", as_index=False).agg(
                    **{
                        c: (c, "mean")
                        for c in (f"{what}_{when}", f"{what}_{when}_lo", f"{what}_{when}_hi")
                    }
                )
                part = part[part["model.activation"].isin(activations)]
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
        ax.set_xticks(range(len(activations)), activations, rotation=30)
        ax.set_title(
            f"{'at initialization' if when == 'init' else 'after training'} "
            f"(n = {int(table['n_networks'].min())} networks per point)",
            fontsize=9,
        )
    axes[0].set_ylabel("share of hidden units")
    axes[1].legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    common.save_figure(fig, out, "sokar2023_dormant_vs_dead")


def main(argv=None) -> int:
    args = common.parse_args("sokar2023", __doc__.splitlines()[0], argv)
    common.theme()
    runs, _ = common.run_config(
        "sokar2023.toml",
        args.out / "run",
        overrides=TINY if args.tiny else (),
        n_inits=64 if args.tiny else None,
        force=args.force,
        quiet=args.tiny,
    )
    table = unit_shares(runs)
    common.write_table(table, args.out, "summary.csv")
    figure(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
