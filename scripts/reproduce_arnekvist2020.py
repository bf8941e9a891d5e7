"""Reproduction 4: Arnekvist, Carvalho, Kragic and Stork (2020), arXiv 2005.06195.

Claim: on a regression task, smaller target variance and more momentum both make dying ReLU more
likely. Measured (``arnekvist2020.toml``): the share of networks dead after training (some hidden
layer all dead; Wilson intervals) and the share of hidden units dead (mean over networks, normal
intervals), against the momentum coefficient and against the scale (and, by a shift, the mean) of
the targets. Diverged runs are left out of the proportions and counted in ``p_diverged``.
Writes ``results/arnekvist2020/``: ``summary.csv`` (a row per setting) and ``figures/``.

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
    keep = KEYS + ["n_inits"]
    for name in ("p_dead_init", "p_dead_end", "p_diverged"):
        keep += [name, f"{name}_lo", f"{name}_hi"]
    return summary[keep].merge(units, on=KEYS)


def figure(table: pd.DataFrame, out) -> None:
    shifts = sorted(table["data.target_shift"].unique())
    momenta = sorted(table["train.momentum"].unique())
    fig, axes = plt.subplots(
        2, 1 + len(shifts), figsize=(4.6 * (1 + len(shifts)), 8), layout="constrained"
    )
    for row, (column, ylabel) in enumerate(
        (("p_dead_end", "P(network dead at end)"), ("unit_dead_end", "share of units dead at end"))
    ):
        base = table[table["data.target_shift"] == shifts[0]].copy()
        base["position"] = [momenta.index(m) for m in base["train.momentum"]]
        ax = axes[row][0]
        common.interval_lines(
            ax, base, "position", column, "data.target_scale", label_format="target scale {:g}"
        )
        ax.set_xticks(range(len(momenta)), [f"{m:g}" for m in momenta])
        ax.set_xlabel("momentum coefficient mu")
        ax.set_ylabel(ylabel)
        ax.set_title(f"against momentum (shift {shifts[0]:g})", fontsize=9)
        ax.legend(fontsize=7, frameon=False)
        for col, shift in enumerate(shifts, start=1):
            ax = axes[row][col]
            part = table[table["data.target_shift"] == shift]
            common.interval_lines(
                ax, part, "data.target_scale", column, "train.momentum", label_format="mu = {:g}"
            )
            ax.set_xscale("log")
            ax.set_xlabel("target scale s (targets = s sin(pi x) + shift)")
            ax.set_title(f"against target scale (shift {shift:g})", fontsize=9)
            ax.legend(fontsize=7, frameon=False)
    for ax in axes.flat:
        ax.set_ylim(-0.02, 1.02)
    fig.suptitle(
        f"1-D regression, ReLU 2x4, SGD + momentum; n = {int(table['n_inits'].min())} "
        "initializations per setting (diverged runs excluded)",
        fontsize=10,
    )
    common.save_figure(fig, out, "arnekvist2020_momentum_target_scale")


def main(argv=None) -> int:
    args = common.parse_args("arnekvist2020", __doc__.splitlines()[0], argv)
    common.theme()
    runs, summary = common.run_config(
        "arnekvist2020.toml",
        args.out / "run",
        overrides=TINY if args.tiny else (),
        n_inits=64 if args.tiny else None,
        force=args.force,
        quiet=args.tiny,
    )
    table = table_of(runs, summary)
    common.write_table(table, args.out, "summary.csv")
    figure(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
