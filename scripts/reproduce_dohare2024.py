"""Dohare et al. (Nature 2024): loss of plasticity on the slowly-changing regression (SCR) stream.

The paper's smallest benchmark (Extended Data Fig. 2): 5-unit learners trained online on a stream
of 20 bits whose distribution keeps changing, 3 million examples, 100 runs per learner; the claim
that ReLU and tanh learners' errors rise to the linear baseline's at learning rate 0.01. The
engine runs the 100 runs of a learner at once. Three runs of ``study run``:

* ``study/configs/dohare2024.toml``: ReLU, tanh, sigmoid, leaky ReLU, ELU and SiLU at 0.01;
* ``study/configs/dohare2024_lr.toml``: ReLU at 0.003 and 0.001;
* the same with ``model.depth = 0``: the linear baseline at all three learning rates.

Writes ``results/dohare2024/``: ``summary.csv`` (a row per learner and learning rate: the error
of the first and last bins, dead units at the end under each definition, revivals, with 95%
intervals over the 100 runs), ``curves.csv`` (the mean curves with intervals, a row per learner,
learning rate and logged step), ``runs_summary.csv`` (the network counts of each run folder: dead at
the end, revived, with Wilson bounds) and ``figures/*.png``; runs in ``runs/``.

Usage: ``python scripts/reproduce_dohare2024.py [--tiny] [--out DIR] [--force]``
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import reproduce_common as common

from study import analysis, results

LEARNER = "learner"
LR = "train.learning_rate"
ORDER = ["relu", "tanh", "sigmoid", "leaky_relu", "elu", "silu", "linear"]
# Curves over 75 logged steps: bands, and about 10 markers per line.
BANDS = dict(band=True, max_markers=10)
# The definitions of death compared on the same networks (curves.parquet columns, layer 1).
DEFINITIONS = {
    "dead_units_l1": "dead (derivative 0 on every probe input)",
    "rarely_active_units_l1": "rarely active (active on < 1% of the probe)",
    "zero_share_l1": "zero share (share of zero activations)",
}
WIDTH = 5


def runs_of(out, tiny: bool, force: bool) -> dict[str, tuple]:
    """The three ``study run`` calls: ``{part: (runs, curves)}``."""
    size = ["train.steps=2000", "train.log_every=400", "data.flip_every=500"] if tiny else []
    n_inits = 8 if tiny else None
    parts = {
        "activations": ("dohare2024.toml", size),
        "learning_rates": ("dohare2024_lr.toml", size),
        "linear": (
            "dohare2024_lr.toml",
            size + ["model.depth=0", "train.learning_rate=[0.01,0.003,0.001]"],
        ),
    }
    if tiny:
        parts["activations"] = ("dohare2024.toml", size + ["model.activation=['relu','tanh']"])
    tables = {}
    for part, (config, overrides) in parts.items():
        folder = out / "runs" / part
        started = time.perf_counter()
        runs, _ = common.run_config(
            config, folder, overrides=overrides, n_inits=n_inits, force=force
        )
        common.say(f"{part}: {time.perf_counter() - started:.0f} s")
        tables[part] = (runs, results.read_curves(folder))
    return tables


def with_learner(frame: pd.DataFrame) -> pd.DataFrame:
    """A ``learner`` column: the activation, or ``linear`` for depth 0."""
    learner = frame["model.activation"].where(frame["model.depth"] > 0, "linear")
    return frame.assign(**{LEARNER: learner})


def curve_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean over runs per (learner, learning rate, step), with 95% normal intervals."""
    frame = with_learner(curves)
    for name in DEFINITIONS:
        if name in frame and name != "zero_share_l1":
            frame[name] = frame[name] / WIDTH  # a share of the layer's units
    keys = [LEARNER, LR, "step"]
    columns = ["error"] + [name for name in DEFINITIONS if name in frame]
    grouped = frame.groupby(keys, sort=True)[columns]
    mean, sd, n = grouped.mean(), grouped.std(), grouped.count()
    half = common.Z95 * sd / np.sqrt(n)
    table = mean.copy()
    for name in columns:
        table[f"{name}_lo"] = mean[name] - half[name]
        table[f"{name}_hi"] = mean[name] + half[name]
    table["n_runs"] = grouped.size()
    return table.reset_index()


def summary_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """A row per (learner, learning rate): first and last bins' error, units dead at the end
    under each definition, and revivals, with 95% intervals over the runs."""
    rows = []
    frame = with_learner(curves)
    steps = sorted(frame["step"].unique())
    first, last = steps[1], steps[-1]
    runs = with_learner(runs)
    for (learner, lr), part in frame.groupby([LEARNER, LR], sort=False):
        row = {LEARNER: learner, LR: lr, "n_runs": part["init"].nunique()}
        for label, step in (("first_bin", first), ("last_bin", last)):
            values = part.loc[part["step"] == step, "error"]
            row.update(common.mean_interval(f"error_{label}", values))
        end = part[part["step"] == last]
        for name in DEFINITIONS:
            if name in end:
                share = end[name] if name == "zero_share_l1" else end[name] / WIDTH
                short = name.removesuffix("_l1").replace("_units", "").removesuffix("_share")
                row.update(common.mean_interval(f"{short}_share_end", share, 0, 1))
        own = runs[(runs[LEARNER] == learner) & (runs[LR] == lr)]
        if "revived_units_l1" in own:
            k = int((own["revived_units_l1"] > 0).sum())
            lo, hi = common.wilson(k, len(own))
            row.update(k_unit_revived=k, p_unit_revived=k / len(own))
            row.update(p_unit_revived_lo=lo[0], p_unit_revived_hi=hi[0])
            row["mean_revived_units"] = own["revived_units_l1"].mean()
        rows.append(row)
    order = {name: i for i, name in enumerate(ORDER)}
    table = pd.DataFrame(rows)
    return table.sort_values([LEARNER, LR], key=lambda c: c.map(order) if c.name == LEARNER else -c)


def windows(last_step: float) -> dict[str, tuple[float, float]]:
    """Stretches of the stream, ``(first, last]`` in examples: ``mid`` is the second sixth (0.5-1
    million of 3 million: where the authors' repository figure ends), ``end`` the last sixth."""
    return {"mid": (last_step / 6, last_step / 3), "end": (last_step * 5 / 6, last_step)}


def window_errors(curves: pd.DataFrame) -> pd.DataFrame:
    """Each run's mean error over the bins of each window: a row per (learner, learning rate,
    run, window), column ``error``."""
    frame = with_learner(curves)
    parts = []
    for name, (first, last) in windows(frame["step"].max()).items():
        inside = frame[(frame["step"] > first) & (frame["step"] <= last)]
        mean = inside.groupby([LEARNER, LR, "init"], sort=True)["error"].mean()
        parts.append(mean.reset_index().assign(window=name))
    return pd.concat(parts, ignore_index=True)


def window_columns(per_run: pd.DataFrame) -> pd.DataFrame:
    """``error_mid`` and ``error_end`` with 95% normal intervals over the runs, a row per
    (learner, learning rate)."""
    rows = []
    for (learner, lr), part in per_run.groupby([LEARNER, LR], sort=False):
        row = {LEARNER: learner, LR: lr}
        for name, values in part.groupby("window")["error"]:
            row.update(common.mean_interval(f"error_{name}", values))
        rows.append(row)
    return pd.DataFrame(rows)


def linear_comparisons(per_run: pd.DataFrame) -> pd.DataFrame:
    """Each learner against the linear baseline at its learning rate and against the best linear
    learner (the lowest mean error in the window), run by run (every learner sees the same 100
    streams): the ratio of mean errors, the paired difference with its 95% t interval and test,
    Holm-adjusted over the table (the family of "ends above / at / below the linear baseline")."""
    rows = []
    for window, part in per_run.groupby("window", sort=False):
        linear = part[part[LEARNER] == "linear"]
        by_rate = {lr: rows_.set_index("init")["error"] for lr, rows_ in linear.groupby(LR)}
        best = min(by_rate, key=lambda lr: by_rate[lr].mean())
        for (learner, lr), own in part[part[LEARNER] != "linear"].groupby([LEARNER, LR]):
            errors = own.set_index("init")["error"]
            for reference in dict.fromkeys([lr, best]):
                if reference not in by_rate:
                    continue
                base = by_rate[reference].reindex(errors.index)
                d, lo, hi, p = analysis.paired_t_test(errors - base)
                rows.append(
                    {"window": window, LEARNER: learner, LR: lr, "linear_rate": reference,
                     "best_linear": reference == best, "error": errors.mean(),
                     "error_linear": base.mean(), "ratio": errors.mean() / base.mean(),
                     "difference": d, "difference_lo": lo, "difference_hi": hi,
                     "test": "paired t", "p_value": p}
                )  # fmt: skip
    table = pd.DataFrame(rows)
    table["p_holm"] = analysis.holm(table["p_value"])
    return table


# Values read off the authors' repository figure (their 1 million examples), with the source.
PUBLISHED = common.ROOT / "results" / "dohare2024" / "published.csv"
LABELS = {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid", "leaky_relu": "leaky ReLU",
          "elu": "ELU", "silu": "SiLU", "linear": "linear"}  # fmt: skip


def published_marks(ax, learners: list[str], lr: float | None = None) -> None:
    """The authors' figure's mean error over its window as a black bar with a cross, per learner
    (at ``lr``; the linear learner at any rate, as their figure does not give its step size)."""
    published = pd.read_csv(PUBLISHED)
    rows = published[published[LEARNER].isin(learners)]
    if lr is not None:
        rows = rows[(rows[LR] == lr) | rows[LR].isna()]
    rows = rows.sort_values("error")
    for i, (_, row) in enumerate(rows.iterrows()):
        span = np.array([row["first_example"], row["last_example"]]) / 1e6
        ax.plot(span, [row["error"]] * 2, color="black", lw=1.5)
        label = "authors' figure, 0.5-1 M (read by eye)" if i == 0 else None
        ax.plot(span.mean(), row["error"], "kx", markersize=6, label=label)
    lifts = label_lifts(ax, rows["error"])  # once every mark is drawn: the y limits are final
    for (_, row), lift in zip(rows.iterrows(), lifts, strict=True):
        name = LABELS[row[LEARNER]] + (
            "" if lr is not None or np.isnan(row[LR]) else f" {row[LR]:g}"
        )
        ax.annotate(name, (row["last_example"] / 1e6, row["error"]), fontsize=7, xytext=(3, lift),
                    textcoords="offset points", va="center")  # fmt: skip


def label_lifts(ax, heights, gap: float = 8.5) -> np.ndarray:
    """How far up (points) to move labels anchored at ``heights`` (data units of ``ax``'s linear y
    axis, as its limits are now) so that no two are less than ``gap`` points apart (a line of
    7-point text): from the lowest up, each goes to its anchor or ``gap`` above the label below
    it, whichever is higher. Returns float[len(heights)], in the order of ``heights``."""
    low, high = ax.get_ylim()
    per_unit = ax.bbox.height * 72 / ax.figure.dpi / (high - low)
    anchors = np.asarray(heights, float) * per_unit
    placed = np.empty_like(anchors)
    top = -np.inf
    for i in np.argsort(anchors, kind="stable"):
        top = max(anchors[i], top + gap)
        placed[i] = top
    return placed - anchors


def bands(part: pd.DataFrame) -> str:
    """What the bands of ``curve_table``'s rows ``part`` are, for a caption."""
    return f"bands: 95% normal intervals of the mean over {int(part['n_runs'].min())} runs"


def readable_labels(ax) -> None:
    """Name the learners as a reader does ("leaky ReLU", not ``leaky_relu``) in the legend."""
    for line in ax.get_lines():
        line.set_label(LABELS.get(line.get_label(), line.get_label()))


def error_figure(table: pd.DataFrame, out, lr: float) -> None:
    """Online error against examples seen, one line per learner, at one learning rate, with the
    authors' published values where their figure gives them."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    part = table[(table[LR] == lr) & (table["step"] > 0)].assign(millions=lambda t: t["step"] / 1e6)
    common.interval_lines(ax, part, "millions", "error", LEARNER, **BANDS, order=ORDER)
    published_marks(ax, ["relu", "tanh", "linear"], lr)
    readable_labels(ax)
    ax.set_xlabel("examples seen (millions)")
    ax.set_ylabel("mean squared error per bin of 40,000")
    ax.set_title(f"SCR, 5 units, online SGD {lr:g}: error\n{bands(part)}", fontsize=10)
    # outside: inside, it covered the lower curves and the marks' labels
    ax.legend(title="learner", fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    common.save_figure(fig, out, f"error_lr{lr:g}")


def dead_figure(table: pd.DataFrame, out, lr: float) -> None:
    """Share of hidden units dead over the stream, one panel per definition of death."""
    names = [name for name in DEFINITIONS if name in table]
    grid = {"sharey": True, "layout": "constrained"}  # constrained: the title clears the panels'
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), **grid)
    part = table[(table[LR] == lr) & (table[LEARNER] != "linear")]
    part = part.assign(millions=part["step"] / 1e6)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        common.interval_lines(ax, part, "millions", name, LEARNER, **BANDS, order=ORDER)
        readable_labels(ax)
        ax.set_title(DEFINITIONS[name], fontsize=9)
        ax.set_xlabel("examples seen (millions)")
    np.atleast_1d(axes)[0].set_ylabel("share of the 5 hidden units")
    np.atleast_1d(axes)[0].legend(title="learner", fontsize=8)
    fig.suptitle(
        f"SCR, online SGD {lr:g}: units lost, three definitions on the same networks\n"
        f"({bands(part)})"
    )
    common.save_figure(fig, out, f"dead_share_lr{lr:g}")


def learning_rate_figure(table: pd.DataFrame, out) -> None:
    """ReLU against the linear baseline at each learning rate: error and dead share."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    part = table[table[LEARNER].isin(["relu", "linear"]) & (table["step"] > 0)]
    part = part.assign(series=part[LEARNER].map(LABELS) + " " + part[LR].map("{:g}".format))
    part = part.assign(millions=part["step"] / 1e6)
    order = [f"{LABELS[name]} {lr:g}" for name in ("relu", "linear") for lr in (0.01, 0.003, 0.001)]
    common.interval_lines(left, part, "millions", "error", "series", **BANDS, order=order)
    published_marks(left, ["relu", "linear"])
    left.set_ylabel("mean squared error per bin of 40,000")
    relu = part[part[LEARNER] == "relu"]
    common.interval_lines(right, relu, "millions", "dead_units_l1", "series", **BANDS, order=order)
    right.set_ylabel("share of units dead on the probe")
    for ax in (left, right):
        ax.set_xlabel("examples seen (millions)")
    # one legend under both panels (their series share styles): inside, it covered ReLU 0.01
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(
        "SCR: ReLU and the linear baseline at three learning rates\n"
        f"({bands(part)}; the authors' figure shows one standard error)"
    )
    common.save_figure(fig, out, "learning_rates")


def main(argv=None) -> int:
    args = common.parse_args("dohare2024", __doc__.splitlines()[0], argv)
    common.theme()
    started = time.perf_counter()
    tables = runs_of(args.out, args.tiny, args.force)
    runs = pd.concat([t[0] for t in tables.values()], ignore_index=True)
    curves = pd.concat([t[1] for t in tables.values()], ignore_index=True)
    table = curve_table(curves)
    per_run = window_errors(curves)
    summary = summary_table(runs, curves).merge(window_columns(per_run), on=[LEARNER, LR])
    common.write_table(summary, args.out, "summary.csv")
    common.write_table(linear_comparisons(per_run), args.out, "comparisons.csv")
    common.write_table(table, args.out, "curves.csv")
    folders = {part: args.out / "runs" / part for part in tables}
    common.write_table(common.runs_summary(folders), args.out, "runs_summary.csv")
    for lr in sorted(table[LR].unique(), reverse=True)[:1]:
        error_figure(table, args.out, lr)
        dead_figure(table, args.out, lr)
    learning_rate_figure(table, args.out)
    common.say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    common.exit_main(main)
