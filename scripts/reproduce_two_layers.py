"""Reproduction 2: two consecutive ReLU layers on centered inputs (``two_layers.toml``).

The second answer's claim: a unit of the second layer sees n = width non-negative inputs, so it
is dead at init with probability 2^-n (all its weights negative). Measured against the width of
the first layer, at init and at the end of training: P(a second-layer unit is dead) (mean share of
dead units, interval from the spread over networks) and P(the network is dead) (Wilson), beside
2^-n and the network-level lower bound 2^-(n^2) (Jensen: E[q^n] >= E[q]^n). Writes
``results/two_layers/``: ``summary.csv`` (a row per input dimension and width), ``figures/``.

Usage: ``python scripts/reproduce_two_layers.py [--tiny] [--out DIR] [--force]``
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import reproduce_common as common

from study import theory

TINY = ["data.dim=2", "model.width=3", "train.steps=20", "train.log_every=10"]


def unit_and_network_table(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """A row per (dim, width): second-layer unit and network death at init and end, theory."""
    frame = runs.copy()
    keys = ["data.dim", "model.width"]
    for when in ("init", "end"):
        frame[f"unit_{when}"] = frame[f"dead_units_{when}_l2"] / frame["model.width"]
        frame[f"first_layer_dead_{when}"] = frame[f"dead_units_{when}_l1"] == frame["model.width"]
    table = summary[keys + ["n_inits", "n_valid"]].copy()
    for when in ("init", "end"):
        units = common.mean_table(frame, keys, f"unit_{when}").rename(
            columns={
                "mean": f"p_unit_l2_dead_{when}",
                "mean_lo": f"p_unit_l2_dead_{when}_lo",
                "mean_hi": f"p_unit_l2_dead_{when}_hi",
            }
        )
        table = table.merge(units.drop(columns="n"), on=keys)
        first = common.proportion_table(frame, keys, f"first_layer_dead_{when}")
        table = table.merge(
            first[keys + ["p"]].rename(columns={"p": f"p_layer1_dead_{when}"}), on=keys
        )
        network = summary[keys + [f"p_dead_{when}", f"p_dead_{when}_lo", f"p_dead_{when}_hi"]]
        table = table.merge(
            network.rename(columns=lambda c: c.replace("p_dead_", "p_network_dead_")), on=keys
        )
    width = table["model.width"].to_numpy()
    table["bound_unit_2^-n"] = [theory.p_dead_nonnegative_bound(int(n)) for n in width]
    table["bound_network_2^-n^2"] = table["bound_unit_2^-n"] ** width
    table["bound_exact_n_le_dim"] = width <= table["data.dim"].to_numpy()
    table["bound_in_interval"] = (table["p_unit_l2_dead_init_lo"] <= table["bound_unit_2^-n"]) & (
        table["bound_unit_2^-n"] <= table["p_unit_l2_dead_init_hi"]
    )
    return table


def figure(table: pd.DataFrame, out) -> None:
    dims = sorted(table["data.dim"].unique())
    fig, axes = plt.subplots(1, len(dims), figsize=(5.2 * len(dims), 4), squeeze=False)
    for ax, dim in zip(axes[0], dims, strict=True):
        part = table[table["data.dim"] == dim].sort_values("model.width")
        series = []
        for when in ("init", "end"):
            for what, column in (
                ("unit of layer 2", "p_unit_l2_dead"),
                ("network", "p_network_dead"),
            ):
                piece = part[["model.width"]].copy()
                piece["series"] = f"{what}, {'init' if when == 'init' else 'end'}"
                for suffix in ("", "_lo", "_hi"):
                    piece[f"p{suffix}"] = part[f"{column}_{when}{suffix}"].to_numpy()
                series.append(piece)
        common.interval_lines(ax, pd.concat(series), "model.width", "p", "series")
        widths = np.arange(1, part["model.width"].max() + 1)
        ax.plot(widths, 2.0**-widths, "k:", lw=1.4, label="$2^{-n}$ (unit bound)")
        bound = {"color": "0.5", "ls": ":", "lw": 1.2, "label": "$2^{-n^2}$ (network bound)"}
        ax.plot(widths, 2.0 ** -(widths**2), **bound)
        ax.axvspan(0.5, dim + 0.5, color="0.9", zorder=-1, label="n ≤ dim: $2^{-n}$ exact")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1.0)
        ax.set_xlim(0.5, part["model.width"].max() + 0.5)
        ax.set_xlabel("width n of the first ReLU layer")
        ax.set_ylabel("probability dead")
        ax.set_title(
            f"centered N(0, I) inputs, dim = {dim}\nn = {int(part['n_inits'].min())} networks "
            "per width (zero values not drawn on log axis)",
            fontsize=9,
        )
    axes[0][-1].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(
        "bars: network, 95% Wilson intervals; unit of layer 2, 95% normal intervals of the mean "
        "share over networks (the units of one network are not independent)",
        fontsize=9,
        y=1.04,
    )
    common.save_figure(fig, out, "two_layers_vs_width")


def main(argv=None) -> int:
    args = common.parse_args("two_layers", __doc__.splitlines()[0], argv)
    common.theme()
    runs, summary = common.run_sized("two_layers.toml", args.out / "run", args, TINY)
    table = unit_and_network_table(runs, summary)
    common.write_table(table, args.out, "summary.csv")
    figure(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
