"""Reproduction 4: Arnekvist, Carvalho, Kragic and Stork (2020), arXiv 2005.06195.

Claim: on a regression task, smaller target variance and more momentum both make dying ReLU more
likely. Measured (``arnekvist2020.toml``): the share of networks dead after training (some hidden
layer all dead; Wilson intervals) and the share of hidden units dead (mean over networks, normal
intervals), against the momentum coefficient and against the scale (and, by a shift, the mean) of
the targets. Diverged runs are left out of the proportions and counted in ``p_diverged``.
Two arms: the learning rate fixed at 0.01 (``arnekvist2020.toml``: more momentum also means larger
effective steps lr / (1 - mu)), and the effective step fixed at 0.01 (``arnekvist2020_effective
.toml``: lr = 0.01 (1 - mu)), from the same initializations. Writes ``results/arnekvist2020/``:
``summary.csv`` (a row per arm and setting), ``comparisons.csv`` (paired tests of the claims'
contrasts, Holm-adjusted per family) and ``figures/``.

Usage: ``python scripts/reproduce_arnekvist2020.py [--tiny] [--out DIR] [--force]``
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import pandas as pd
import reproduce_common as common

from study import analysis

TINY = ["train.steps=20", "train.log_every=10", "data.target_shift=0.0"]
KEYS = ["train.momentum", "data.target_scale", "data.target_shift"]


def table_of(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    depth = len(analysis.layer_columns(runs, "end"))
    frame = runs.copy()
    columns = [f"dead_units_end_l{k}" for k in range(1, depth + 1)]
    frame["unit_dead_end"] = frame[columns].sum(axis=1) / (frame["model.width"] * depth)
    units = common.mean_table(frame, KEYS, "unit_dead_end").rename(
        columns={
            "mean": "unit_dead_end",
            "mean_lo": "unit_dead_end_lo",
            "mean_hi": "unit_dead_end_hi",
            "n": "n_valid",
        }
    )
    keep = KEYS + ["train.learning_rate", "n_inits"]
    for name in ("p_dead_init", "p_dead_end", "p_diverged"):
        keep += [name, f"{name}_lo", f"{name}_hi"]
    return summary[keep].merge(units, on=KEYS)


# The two arms: the folder of each run under the results folder, its config, and its name.
ARMS = {
    "run": ("arnekvist2020.toml", "fixed learning rate"),
    "effective": ("arnekvist2020_effective.toml", "fixed effective step"),
}
# The claims' contrasts, each a family of paired comparisons Holm-adjusted together: every pair of
# momenta within a (target scale, shift) cell, every pair of target scales within a (momentum,
# shift) cell, and shift 1 against 0 within a (momentum, scale) cell.
FAMILIES = {
    "momentum": "train.momentum",
    "target scale": "data.target_scale",
    "target shift": "data.target_shift",
}


def comparisons(runs_of_arm: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """P(dead at end) compared between the levels of each claim's key, network by network
    (shared draws: McNemar's exact test, Newcombe's paired interval), one Holm family per arm and
    key (:func:`study.analysis.compare`)."""
    tables = []
    for arm, runs in runs_of_arm.items():
        runs = runs.drop(columns=["variant", "train.learning_rate"], errors="ignore")
        for family, key in FAMILIES.items():
            if runs[key].nunique() < 2:
                continue
            table = analysis.compare(runs, key, shared_draws=True)
            tables.append(table.assign(arm=ARMS[arm][1], family=family))
    table = pd.concat(tables, ignore_index=True)
    front = ["arm", "family", "by", *[key for key in KEYS if key in table]]
    return table[[*front, *[c for c in table.columns if c not in front]]]


MEASURES = {
    "p_dead_end": "P(network dead at end), log scale",
    "unit_dead_end": "share of units dead at end",
}


def figure(table: pd.DataFrame, out) -> None:
    """Left: against 1 / (1 - mu) on a log axis, one panel per arm (shift 0); right: against the
    target scale, one panel per shift (fixed learning rate). Top P(network dead), bottom the share
    of units dead; 95% intervals (Wilson for networks, normal over networks for units)."""
    shifts = sorted(table["data.target_shift"].unique())
    table = table.assign(multiplier=1 / (1 - table["train.momentum"]))
    panels = [("momentum", arm, shifts[0]) for arm in dict.fromkeys(table["arm"])]
    panels += [("scale", ARMS["run"][1], shift) for shift in shifts]
    size = (4.2 * len(panels), 7.6)
    fig, axes = plt.subplots(2, len(panels), figsize=size, layout="constrained", sharey="row")
    for row, (column, ylabel) in enumerate(MEASURES.items()):
        for col, (against, arm, shift) in enumerate(panels):
            ax = axes[row][col]
            part = table[(table["arm"] == arm) & (table["data.target_shift"] == shift)]
            if against == "momentum":
                common.interval_lines(ax, part, "multiplier", column, "data.target_scale",
                                      label_format="target scale {:g}")  # fmt: skip
                ax.set_xscale("log")
                ax.set_xticks(
                    [1, 2, 10, 100], ["1\n(mu 0)", "2\n(0.5)", "10\n(0.9)", "100\n(0.99)"]
                )
                ax.set_xlabel("1 / (1 - mu): momentum's step multiplier")
                ax.set_title(f"{arm}, shift {shift:g}", fontsize=9)
            else:
                common.interval_lines(ax, part, "data.target_scale", column, "train.momentum",
                                      label_format="mu = {:g}")  # fmt: skip
                ax.set_xscale("log")
                ax.set_xlabel("target scale s (targets = s sin(pi x) + shift)")
                ax.set_title(f"{arm}, shift {shift:g}", fontsize=9)
            if column == "p_dead_end":
                ax.set_yscale("log")
            ax.set_ylabel(ylabel if col == 0 else "")
            ax.legend(fontsize=7, frameon=False)
    fig.suptitle(
        f"1-D regression, ReLU 2x4, SGD + momentum; n = {int(table['n_inits'].min())} "
        "initializations per setting (diverged runs excluded); bars: 95% intervals. Fixed "
        "learning rate: lr 0.01; fixed effective step: lr / (1 - mu) = 0.01",
        fontsize=10,
    )
    common.save_figure(fig, out, "arnekvist2020_momentum_target_scale")


def main(argv=None) -> int:
    args = common.parse_args("arnekvist2020", __doc__.splitlines()[0], argv)
    common.theme()
    runs_of_arm, tables = {}, []
    for arm, (config, name) in ARMS.items():
        runs, summary = common.run_sized(config, args.out / arm, args, TINY)
        runs_of_arm[arm] = runs
        table = table_of(runs, summary).assign(arm=name)
        table["effective_step"] = table["train.learning_rate"] / (1 - table["train.momentum"])
        tables.append(table[["arm", *table.columns.drop("arm")]])
    table = pd.concat(tables, ignore_index=True)
    common.write_table(table, args.out, "summary.csv")
    common.write_table(comparisons(runs_of_arm), args.out, "comparisons.csv")
    figure(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
