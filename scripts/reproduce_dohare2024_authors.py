"""Dohare et al.'s slowly-changing regression in the authors' convention, beside their figure.

``study/configs/dohare2024_authors.toml``: the stream as the authors' code generates it (their
target network's thresholds and output bias, every slow bit redrawn at a change), 1 million
examples, bins of 20,000, 100 runs, ReLU at step sizes 0.01, 0.003 and 0.001, tanh and the linear
learner: the setting of the figure in their repository. Their figure's values over 0.5-1 million
examples (``results/dohare2024/published.csv``, read by eye) are set beside ours, as errors and
as ratios to the linear learner, with bands of one standard error as theirs.

Writes ``results/dohare2024_authors/``: ``summary.csv`` (a row per learner and step size: the
mean error over 0.5-1 million examples with one standard error, its ratio to the linear learner's
at the same step size, the published error and ratio where their figure gives them),
``curves.csv`` and ``figures/error.png``; runs in ``runs/``.

Usage: ``python scripts/reproduce_dohare2024_authors.py [--tiny] [--out DIR] [--force]``
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import reproduce_common as common
import reproduce_dohare2024 as dohare

from study import analysis, results

NAME = "dohare2024_authors"
LR = "train.learning_rate"
LEARNERS = {"baseline": "relu", "tanh": "tanh", "linear": "linear"}
WINDOW = (0.5, 1.0)  # the stretch of the stream their figure's values cover, as a share of it
TINY = ["train.steps=2000", "train.log_every=200", "data.flip_every=500"]


def per_run_errors(curves: pd.DataFrame) -> pd.DataFrame:
    """Each run's mean error over :data:`WINDOW` of its stream: a row per (learner, step size,
    run)."""
    last = curves["step"].max()
    inside = curves[(curves["step"] > last * WINDOW[0]) & (curves["step"] <= last * WINDOW[1])]
    frame = inside.assign(learner=inside["variant"].map(LEARNERS))
    return frame.groupby(["learner", LR, "init"])["error"].mean().reset_index()


def summary_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """A row per (learner, step size): mean window error with one standard error, the ratio to
    the linear learner at the same step size (and the paired test of the difference: the same
    streams), and the authors' published error and ratio beside."""
    published = pd.read_csv(dohare.PUBLISHED)
    linear_published = published.loc[published["learner"] == "linear", "error"].iloc[0]
    rows = []
    for (learner, lr), part in per_run.groupby(["learner", LR], sort=False):
        errors = part.set_index("init")["error"]
        linear = per_run[(per_run["learner"] == "linear") & (per_run[LR] == lr)]
        linear = linear.set_index("init")["error"].reindex(errors.index)
        row = {"learner": learner, LR: lr, "n_runs": len(errors), "error": errors.mean()}
        row["error_se"] = errors.std() / np.sqrt(len(errors))
        row["ratio_to_linear"] = errors.mean() / linear.mean()
        if learner != "linear":
            d, lo, hi, p = analysis.paired_t_test(errors - linear)
            row |= {"difference": d, "difference_lo": lo, "difference_hi": hi, "p_value": p}
        mine = published[(published["learner"] == learner) & (published[LR] == lr)]
        if len(mine):
            row["published_error"] = mine["error"].iloc[0]
            row["published_ratio_to_linear"] = mine["error"].iloc[0] / linear_published
            row["error_over_published"] = errors.mean() / mine["error"].iloc[0]
        rows.append(row)
    table = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(LEARNERS.values())}
    return table.sort_values(["learner", LR], key=lambda c: c.map(order) if c.name == "learner"
                             else -c, ignore_index=True)  # fmt: skip


def curve_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean error per (learner, step size, bin) with one standard error over the runs."""
    frame = curves[curves["step"] > 0].assign(learner=curves["variant"].map(LEARNERS))
    grouped = frame.groupby(["learner", LR, "step"])["error"]
    table = grouped.mean().rename("error").to_frame()
    table["error_se"] = grouped.std() / np.sqrt(grouped.count())
    table["error_lo"] = table["error"] - table["error_se"]
    table["error_hi"] = table["error"] + table["error_se"]
    return table.reset_index()


def error_figure(table: pd.DataFrame, out, n_runs: int) -> None:
    """ReLU at three step sizes, tanh at 0.01 and the linear learner, with their figure's
    values over 0.5-1 million examples as black bars."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    keep = (table["learner"] != "tanh") | (table[LR] == 0.01)
    part = table[keep & ((table["learner"] != "linear") | (table[LR] == 0.01))]
    series = part["learner"].map(dohare.LABELS) + " " + part[LR].map("{:g}".format)
    part = part.assign(series=series, millions=part["step"] / 1e6)
    common.interval_lines(ax, part, "millions", "error", "series", band=True, max_markers=10)
    dohare.published_marks(ax, ["relu", "tanh", "linear"])
    ax.set_xlabel("examples seen (millions)")
    ax.set_ylabel("mean squared error per bin of 20,000")
    ax.set_title("The authors' convention (their teacher, all slow bits redrawn): error\n"
                 f"(bands: one standard error over {n_runs} runs, as in their figure)")  # fmt: skip
    # under the axes: the marks' labels stand at the right edge, and inside it covered curves
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    common.save_figure(fig, out, "error")


def main(argv=None) -> int:
    args = common.parse_args(NAME, __doc__.splitlines()[0], argv)
    common.theme()
    folder = args.out / "runs" / "authors"
    common.run_sized(f"{NAME}.toml", folder, args, TINY)
    curves = results.read_curves(folder)
    table = curve_table(curves)
    common.write_table(summary_table(per_run_errors(curves)), args.out, "summary.csv")
    common.write_table(table, args.out, "curves.csv")
    error_figure(table, args.out, curves["init"].nunique())
    return 0


if __name__ == "__main__":
    common.exit_main(main)
