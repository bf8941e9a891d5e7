"""Remedies on Dohare et al.'s slowly-changing regression (issue 25), at the paper's scale.

``study/configs/dohare2024_remedies.toml``: the ReLU learner of ``dohare2024.toml`` (5 units,
online SGD at 0.01, 3 million examples, 100 runs) and, on the same 100 streams from the same
initial networks, L2, shrink and perturb (the authors' online form: weight decay and noise after
every step), continual backprop, ReDo, L2-init, layer norm and the linear learner. Two phases:

* **Tuning** (:data:`GRIDS`): each remedy with a strength gets the same budget, five values (the
  authors' own sweeps where they have one), run on runs 0-49 for 1 million examples; the value
  with the lowest mean error over the last 10% of that stream is chosen (none where more than 1%
  of the runs diverged). ``tuning.csv`` holds every grid point.
* **The study**: the config at 3 million examples with the chosen strengths. Every comparison is
  per run and paired (same stream, same initial network) on runs 50-99, which the choice never
  saw: the mean error over the last 10% of the stream (:data:`END`), its ratio to plain
  backprop's and to the linear learner's, the paired difference with its t interval and test
  (Holm over the table), and the runs where the learner did better.

Writes ``results/dohare2024_remedies/``: ``tuning.csv``, ``summary.csv`` (a row per learner:
errors, dead units at the end under the five definitions, units replaced or re-drawn),
``per_run.csv`` (a row per learner and run: the numbers every other table is computed from),
``by_live_units.csv`` (each learner's end error by its live units at the end),
``comparisons.csv``, ``verdicts.md`` and ``figures/*.png``; runs in ``runs/``.

Usage: ``python scripts/reproduce_dohare2024_remedies.py [--tiny] [--out DIR] [--force]``
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import reproduce_common as common

from study import analysis, config, results, runner

NAME = "dohare2024_remedies"
# Each tuned remedy's key and its five values (the variant's other keys as the config writes
# them). Weight decay, noise and the replacement rate: the authors' sweeps (cfg/sgd/bp/relu_wd.json
# 1e-6..1, relu_snp.json 1e-6..1e-1, cfg/sgd/cbp/relu.json 1e-6..1e-2), five decades of each;
# ReDo's tau: Sokar et al.'s 0, 0.025 and 0.1 and two above; L2-init: Kumar et al.'s lambda over
# five decades (the key is 2 lambda).
GRIDS = {
    "l2": ("train.weight_decay", [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]),
    "shrink_perturb": ("train.noise_std", [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]),
    "cbp": ("train.cbp_replacement_rate", [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]),
    "redo": ("train.redo_tau", [0.0, 0.025, 0.1, 0.3, 0.5]),
    "l2_init": ("train.l2_init", [2e-5, 2e-4, 2e-3, 2e-2, 2e-1]),
}
TUNING = {"train.steps": 1_000_000}  # on runs 0..N/2-1 (N the config's n_inits)
MAX_DIVERGED = 0.01
END = 0.1  # the comparisons' window: the last 10% of the stream
LABELS = {
    "baseline": "ReLU, plain backprop",
    "l2": "L2 (weight decay)",
    "shrink_perturb": "shrink and perturb",
    "cbp": "continual backprop",
    "redo": "ReDo",
    "l2_init": "L2-init",
    "layer_norm": "layer norm",
    "linear": "linear",
}
# The five definitions of a lost unit (curves columns, layer 1), as shares of the layer.
DEFINITIONS = {
    "dead_units_l1": "dead",
    "inactive_units_l1": "inactive",
    "dormant_units_l1": "0-dormant",
    "rarely_active_units_l1": "rarely active (< 1%)",
    "zero_share_l1": "zero share",
}
WIDTH = 5
TINY = {"train.steps": 4000, "train.log_every": 400, "data.flip_every": 500}
TINY_VARIANTS = {"redo": {"train.intervention_every": 800}}


def read_config(tiny: bool) -> dict:
    """The study's config, at --tiny's size if asked."""
    given = config.read_toml(common.CONFIGS / f"{NAME}.toml")
    if tiny:
        variants = given.pop("variants")
        for name, changes in TINY_VARIANTS.items():
            variants[name] = config.nest(config.flatten(variants[name]) | changes)
        given = config.nest(config.flatten(given) | TINY) | {"variants": variants}
    return given


def run(given: dict, out, args, n_inits: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``given`` (a config dict) into ``out``: ``(runs, curves)``."""
    common.say(f"study run {given['name']} -> {out.name}")
    started = time.perf_counter()
    runner.run_config(given, out=out, force=args.force, figures=False, n_inits=n_inits,
                      quiet=args.tiny)  # fmt: skip
    common.say(f"{out.name}: {time.perf_counter() - started:.0f} s")
    return results.ResultsFolder.open(out).runs(), results.read_curves(out)


def tuning_config(given: dict) -> dict:
    """The baseline and one variant per grid point (``<remedy>-<index>``), at :data:`TUNING`'s
    length; the untuned variants left out."""
    flat = config.flatten({k: v for k, v in given.items() if k != "variants"})
    if flat["train.steps"] > TUNING["train.steps"]:
        flat |= TUNING
    variants = {}
    for remedy, (key, values) in GRIDS.items():
        own = config.flatten(given["variants"][remedy])
        for index, value in enumerate(values):
            variants[f"{remedy}-{index}"] = config.nest(own | {key: value})
    return config.nest(flat) | {"name": f"{NAME}_tuning", "variants": variants}


def end_errors(curves: pd.DataFrame) -> pd.DataFrame:
    """Each run's mean error over the bins of the last :data:`END` of its stream, and over the
    first bins as long (``error_start``): a row per (variant, init)."""
    last = curves["step"].max()
    bins = curves[curves["step"] > 0]
    end = bins[bins["step"] > last * (1 - END)]
    start = bins[bins["step"] <= last * END]
    keys = ["variant", "init"]
    return pd.concat(
        [end.groupby(keys)["error"].mean().rename("error_end"),
         start.groupby(keys)["error"].mean().rename("error_start")], axis=1
    ).reset_index()  # fmt: skip


def tuning_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Every grid point: its key and value, runs, share diverged, mean end error (95% interval),
    and ``chosen`` for each remedy's lowest mean among points with at most 1% diverged."""
    errors = end_errors(curves).set_index("variant")
    diverged = runs.groupby("variant")["diverged"].mean()
    rows = []
    for remedy, (key, values) in GRIDS.items():
        for index, value in enumerate(values):
            variant = f"{remedy}-{index}"
            own = errors.loc[[variant], "error_end"].dropna()
            row = {"remedy": remedy, "key": key, "value": value, "variant": variant}
            row |= {"n_runs": len(own), "p_diverged": diverged[variant]}
            row |= common.mean_interval("error_end", own)
            rows.append(row)
    table = pd.DataFrame(rows)
    eligible = table[table["p_diverged"] <= MAX_DIVERGED]
    best = eligible.groupby("remedy", sort=False)["error_end"].idxmin()
    return table.assign(chosen=table.index.isin(best.to_numpy()))


def with_chosen(given: dict, tuning: pd.DataFrame) -> dict:
    """The config with each tuned remedy at its chosen value."""
    given = {**given, "variants": dict(given["variants"])}
    for row in tuning[tuning["chosen"]].itertuples():
        own = config.flatten(given["variants"][row.remedy]) | {row.key: row.value}
        given["variants"][row.remedy] = config.nest(own)
    return given


def per_run_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """A row per (variant, run): errors at the start and the end of the stream, units lost at
    the last check under the five definitions, units alive there, units replaced (CBP) or
    re-drawn (ReDo) over the run, and whether it diverged."""
    last = curves[curves["step"] == curves["step"].max()]
    lost = last.set_index(["variant", "init"])[[n for n in DEFINITIONS if n in last]]
    own = runs.set_index(["variant", "init"])
    table = end_errors(curves).set_index(["variant", "init"]).join(lost)
    own = own.reindex(table.index)
    table["live_units"] = (WIDTH - table["dead_units_l1"]).where(own["model.depth"] > 0)
    for name in ("replaced_units_l1", "reset_units_l1", "diverged"):
        table[name] = own[name]
    order = {name: i for i, name in enumerate(LABELS)}
    table = table.reset_index()
    return table.sort_values(["variant", "init"], key=lambda c: c.map(order) if c.name ==
                             "variant" else c, ignore_index=True)  # fmt: skip


def reporting(per_run: pd.DataFrame) -> pd.DataFrame:
    """The runs no choice saw: init index at or above half the count."""
    return per_run[per_run["init"] >= (per_run["init"].max() + 1) // 2]


def summary_table(per_run: pd.DataFrame, strengths: dict[str, str]) -> pd.DataFrame:
    """A row per learner, on the reporting runs: its strength, errors at the start and the end
    (95% intervals), the share of its units lost under each definition at the end, units alive,
    units replaced or re-drawn, runs diverged."""
    rows = []
    for variant, part in reporting(per_run).groupby("variant", sort=False):
        row = {"learner": LABELS[variant], "variant": variant, "strength": strengths[variant]}
        row |= {"n_runs": len(part), "k_diverged": int(part["diverged"].sum())}
        row |= common.mean_interval("error_start", part["error_start"])
        row |= common.mean_interval("error_end", part["error_end"])
        for name in DEFINITIONS:
            share = part[name] if name == "zero_share_l1" else part[name] / WIDTH
            if share.notna().any():
                row |= common.mean_interval(f"{name.removesuffix('_l1')}_share_end", share, 0, 1)
        row["mean_live_units"] = part["live_units"].mean()
        row["mean_replaced_units"] = part["replaced_units_l1"].mean()
        row["mean_reset_units"] = part["reset_units_l1"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def comparisons(per_run: pd.DataFrame) -> pd.DataFrame:
    """Each learner against plain backprop and against the linear learner (plain backprop
    too), run by run on the reporting runs: mean end errors, their ratio, the paired difference
    (learner minus reference) with its 95% t interval and test, the runs where the learner did
    better; Holm over the table."""
    part = reporting(per_run)
    errors = part.pivot(index="init", columns="variant", values="error_end")
    rows = []
    for reference in ("baseline", "linear"):
        # the linear learner against plain backprop is the row of plain backprop against it
        remedies = [v for v in LABELS if v in errors and v not in ("baseline", "linear")]
        for variant in (["baseline"] if reference == "linear" else []) + remedies:
            pair = errors[[variant, reference]].dropna()
            d, lo, hi, p = analysis.paired_t_test(pair[variant] - pair[reference])
            rows.append(
                {"learner": LABELS[variant], "variant": variant, "reference": reference,
                 "n_runs": len(pair), "error": pair[variant].mean(),
                 "error_reference": pair[reference].mean(),
                 "ratio": pair[variant].mean() / pair[reference].mean(), "difference": d,
                 "difference_lo": lo, "difference_hi": hi,
                 "k_better": int((pair[variant] < pair[reference]).sum()), "test": "paired t",
                 "p_value": p}
            )  # fmt: skip
    table = pd.DataFrame(rows)
    table["p_holm"] = analysis.holm(table["p_value"])
    return table


def by_live_units(per_run: pd.DataFrame) -> pd.DataFrame:
    """The reporting runs of each learner with hidden units, by its live units at the end: how
    many runs, their mean end error (95% interval): the table behind ``per_run.png``."""
    rows = []
    part = reporting(per_run).dropna(subset=["live_units"])
    for (variant, live), own in part.groupby(["variant", "live_units"], sort=False):
        row = {"learner": LABELS[variant], "variant": variant, "live_units": int(live)}
        row |= {"n_runs": len(own)} | common.mean_interval("error_end", own["error_end"])
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["variant", "live_units"], key=lambda c: c.map(
        {name: i for i, name in enumerate(LABELS)}) if c.name == "variant" else c)  # fmt: skip


def rise_tests(per_run: pd.DataFrame) -> pd.DataFrame:
    """Loss of plasticity within each learner: its end error minus its own start error (the
    first :data:`END` of the stream), run by run on the reporting runs, with the t interval."""
    rows = []
    for variant, part in reporting(per_run).groupby("variant", sort=False):
        d, lo, hi, p = analysis.paired_t_test(part["error_end"] - part["error_start"])
        rows.append(
            {"learner": LABELS[variant], "variant": variant, "reference": "own start",
             "n_runs": len(part), "error": part["error_end"].mean(),
             "error_reference": part["error_start"].mean(),
             "ratio": part["error_end"].mean() / part["error_start"].mean(), "difference": d,
             "difference_lo": lo, "difference_hi": hi,
             "k_better": int((part["error_end"] < part["error_start"]).sum()),
             "test": "paired t", "p_value": p}
        )  # fmt: skip
    return pd.DataFrame(rows)


# The paper's claims on this problem, each as (learner, reference, the direction it claims).
CLAIMS = [
    ("Continual backprop keeps the error low: below plain backprop's at the end", "cbp",
     "baseline", "lower"),
    ("Continual backprop keeps the error low: no rise over the stream", "cbp", "own start",
     "not higher"),
    ("L2 reduces the loss of plasticity: end error below plain backprop's", "l2", "baseline",
     "lower"),
    ("Shrink and perturb reduces the loss of plasticity: end error below plain backprop's",
     "shrink_perturb", "baseline", "lower"),
    ("Plain backprop loses plasticity: its error rises over the stream", "baseline",
     "own start", "higher"),
]  # fmt: skip


def verdict(row, direction: str, alpha: float = 0.05) -> str:
    """What the comparison says about a claimed direction, at Holm-adjusted ``alpha``."""
    bound = max(abs(row.difference_lo), abs(row.difference_hi))
    lower = row.difference < 0
    if direction == "not higher":
        if row.p_holm >= alpha:
            share = row.difference_hi / row.error_reference
            return (f"consistent: no significant rise; the interval allows at most "
                    f"+{row.difference_hi:.3g} ({share:.0%} of the start)")  # fmt: skip
        return "supported: lower at the end" if lower else "contradicted: the error rises"
    if row.p_holm >= alpha:
        return f"not shown: no significant difference (none beyond +-{bound:.3g})"
    agrees = lower == (direction == "lower")
    return "supported" if agrees else "contradicted: the other way"


def verdicts_text(table: pd.DataFrame, strengths: dict[str, str], runs: str, steps: int) -> str:
    """verdicts.md: each claim with its numbers, interval, test and verdict (``runs``: which
    runs the comparisons use, in words; ``steps``: the stream's length)."""
    lines = [
        "# Remedies on the slowly-changing regression: the paper's claims",
        "",
        f"Written by scripts/reproduce_dohare2024_remedies.py from comparisons.csv ({runs}, "
        f"which the tuning never saw; mean error over the last 10% of {steps:,} examples; "
        "paired t tests, Holm over every row of comparisons.csv).",
        "",
        "| claim | learner (strength) | error | reference | ratio | difference [95% CI] | "
        "runs better | p (Holm) | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for claim, variant, reference, direction in CLAIMS:
        rows = table[(table["variant"] == variant) & (table["reference"] == reference)]
        for row in rows.itertuples():
            lines.append(
                f"| {claim} | {row.learner} ({strengths[variant]}) | {row.error:.3f} | "
                f"{row.error_reference:.3f} ({reference}) | {row.ratio:.2f} | "
                f"{row.difference:.3f} [{row.difference_lo:.3f}, {row.difference_hi:.3f}] | "
                f"{row.k_better}/{row.n_runs} | {row.p_holm:.2g} | {verdict(row, direction)} |"
            )
    return "\n".join(lines) + "\n"


def curve_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean over all runs per (variant, step) of the error and the shares of units lost, with
    95% normal intervals."""
    frame = curves[curves["step"] > 0].copy()
    names = ["error", *[n for n in DEFINITIONS if n in frame]]
    for name in names[1:]:
        if name != "zero_share_l1":
            frame[name] = frame[name] / WIDTH
    grouped = frame.groupby(["variant", "step"], sort=True)[names]
    mean, sd, n = grouped.mean(), grouped.std(), grouped.count()
    table = mean.copy()
    for name in names:
        half = common.Z95 * sd[name] / np.sqrt(n[name])
        table[f"{name}_lo"], table[f"{name}_hi"] = mean[name] - half, mean[name] + half
    table = table.reset_index()
    return table.assign(learner=table["variant"].map(LABELS), millions=table["step"] / 1e6)


def error_figure(table: pd.DataFrame, out, n_runs: int) -> None:
    """The error over the stream, a line per learner."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    common.interval_lines(ax, table, "millions", "error", "learner", band=True, max_markers=10,
                          order=list(LABELS.values()))  # fmt: skip
    ax.set_xlabel("examples seen (millions)")
    ax.set_ylabel("mean squared error per bin of 20,000")
    ax.set_title(f"Slowly-changing regression, 5 ReLU units, SGD 0.01: remedies\n(bands: 95% "
                 f"intervals over {n_runs} runs; the paper's are one standard error)")  # fmt: skip
    ax.legend(fontsize=7, ncol=2)
    common.save_figure(fig, out, "error")


def distinct_definitions(table: pd.DataFrame) -> dict[str, list[str]]:
    """The definitions of :data:`DEFINITIONS` whose curves differ, each with those equal to it
    on every row (for ReLU, dead, inactive and 0-dormant are one thing; so is rarely active
    where every point of the distribution is 1/32 of the probe)."""
    groups: dict[str, list[str]] = {}
    for name in [n for n in DEFINITIONS if n in table]:
        same = next((g for g in groups if table[g].equals(table[name])), None)
        groups.setdefault(same or name, []).append(name)
    return groups


def lost_units_figure(table: pd.DataFrame, out, n_runs: int) -> None:
    """The share of hidden units lost over the stream, a panel per definition (definitions
    equal on every curve share a panel)."""
    part = table[table["variant"] != "linear"]
    groups = distinct_definitions(part)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), sharey=True)
    for ax, (name, same) in zip(np.atleast_1d(axes), groups.items(), strict=True):
        common.interval_lines(ax, part, "millions", name, "learner", band=True, max_markers=8,
                              order=list(LABELS.values()))  # fmt: skip
        ax.set_title(" = ".join(DEFINITIONS[n] for n in same), fontsize=9)
        ax.set_xlabel("examples (millions)")
    first = np.atleast_1d(axes)[0]
    first.set_ylabel("share of the 5 hidden units\n(zero share: of the activations)")
    first.legend(fontsize=6)
    fig.suptitle(f"Units lost on the probe, five definitions on the same networks (bands: 95% "
                 f"intervals over {n_runs} runs)")  # fmt: skip
    common.save_figure(fig, out, "lost_units")


def per_run_figure(per_run: pd.DataFrame, out) -> None:
    """Each run's end error against its live units at the end, a panel per learner with hidden
    units: a mean error mixes runs that collapsed to a constant (0 live units) and living ones."""
    import seaborn as sns

    part = per_run[per_run["variant"] != "linear"].assign(
        learner=lambda t: t["variant"].map(LABELS), live=lambda t: t["live_units"].astype(int)
    )
    linear = per_run.loc[per_run["variant"] == "linear", "error_end"].mean()
    panels = [label for label in LABELS.values() if label in set(part["learner"])]
    # seaborn's strip jitter draws from NumPy's global generator: seeded, the same file each run
    np.random.seed(0)  # noqa: NPY002
    grid = sns.catplot(part, x="live", y="error_end", col="learner", col_wrap=4, kind="strip",
                       order=range(WIDTH + 1), height=2.4, s=10, alpha=0.6,
                       col_order=panels)  # fmt: skip
    for ax in grid.axes.flat:
        ax.axhline(linear, color="gray", ls="--", lw=1)
    grid.set_axis_labels("live units at the end (of 5)", "error, last 10% of the stream")
    grid.set_titles("{col_name}")
    grid.figure.suptitle("Every run's end error by its live units (dashed: the linear learner's "
                         "mean)", y=1.02)  # fmt: skip
    common.save_figure(grid.figure, out, "per_run")


def strengths_of(given: dict) -> dict[str, str]:
    """Each learner's strength as the tables say it (``given``: the config with the tuned
    values, :func:`with_chosen`)."""
    strengths = {"baseline": "SGD 0.01", "linear": "SGD 0.01", "layer_norm": "no strength"}
    for remedy, (key, _) in GRIDS.items():
        value = config.flatten(given["variants"][remedy])[key]
        strengths[remedy] = f"{key.removeprefix('train.')} = {value:g}, tuned"
    return strengths


def main(argv=None) -> int:
    args = common.parse_args(NAME, __doc__.splitlines()[0], argv)
    common.theme()
    started = time.perf_counter()
    given = read_config(args.tiny)
    n_inits = 16 if args.tiny else given["n_inits"]
    tuning_runs, tuning_curves = run(tuning_config(given), args.out / "runs" / "tuning", args,
                                     n_inits // 2)  # fmt: skip
    tuning = tuning_table(tuning_runs, tuning_curves)
    common.write_table(tuning, args.out, "tuning.csv")
    given = with_chosen(given, tuning)
    runs, curves = run(given, args.out / "runs" / "study", args, n_inits)
    per_run = per_run_table(runs, curves)
    strengths = strengths_of(given)
    table = pd.concat([comparisons(per_run), rise_tests(per_run)], ignore_index=True)
    table["p_holm"] = analysis.holm(table["p_value"])
    common.write_table(per_run, args.out, "per_run.csv")
    common.write_table(by_live_units(per_run), args.out, "by_live_units.csv")
    common.write_table(summary_table(per_run, strengths), args.out, "summary.csv")
    common.write_table(table, args.out, "comparisons.csv")
    held_out = reporting(per_run)["init"]
    runs_text = f"runs {held_out.min()}-{held_out.max()}"
    steps = given["train"]["steps"]
    (args.out / "verdicts.md").write_text(verdicts_text(table, strengths, runs_text, steps))
    curve = curve_table(curves)
    error_figure(curve, args.out, n_inits)
    lost_units_figure(curve, args.out, n_inits)
    per_run_figure(per_run, args.out)
    common.say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    common.exit_main(main)
