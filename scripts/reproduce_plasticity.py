"""Issue 26's study: which plasticity metric predicts that a network can no longer learn?

On Dohare et al.'s slowly-changing regression (``study/configs/plasticity_scr.toml``: ReLU, tanh
and leaky ReLU 5-unit learners, online SGD 0.01, 3,334 networks each, 300,000 examples), every
plasticity metric at every logged step, and at the end the trainability probe (:mod:`study.probe`):
each network and a fresh one learn a fresh stream for ``train.probe_steps`` examples. Its remedies
arm (``plasticity_scr_remedies.toml``) runs the ReLU learner with each remedy of the stream study
(section 9, at its tuned strength) and a plain control, 500 networks each, as learners
``relu+<variant>`` of every table (not pooled). Outcomes per network, at the end:

* *fails the probe* (the primary outcome): its final loss on the fresh task above
  ``FAIL_LOSS_FACTOR`` (1.5) times the fresh network's final loss on the same task
  (``probe_final_loss``, ``probe_fresh_final_loss``): it ends the probe half as high again as a
  fresh network does;
* *fails the probe by its ratio* (a sensitivity check): ``probe_ratio < FAIL_RATIO`` (0.5), its
  loss drop on the fresh task less than half the fresh network's. A drop depends on where it
  starts: a network trained on its own stream starts the fresh one with a larger loss than a fresh
  network and can drop further while ending higher (:mod:`study.probe`), which is why the final
  losses define the primary outcome (docs/results/8-plasticity.md);
* *dead at the end*: every hidden unit dead (``dead_end``);
* *heavily dormant*: at least ``DORMANT_SHARE`` (half) of the hidden units dormant at the end
  (Sokar et al.'s score at ``train.dormant_tau``, ``dormant_units_end_l1``).

Writes ``results/plasticity/``: ``summary.csv`` (a row per activation and pooled: networks, dead
at the end, heavily dormant and failing the probe (both ways) with Wilson intervals, mean
``probe_ratio`` with its t interval and its median, and for the dead, heavily dormant and other
networks the paired comparison with the fresh network on the same fresh task), ``auroc.csv``
(:func:`study.analysis.metric_auroc` of every metric at every logged step for each outcome, per
activation and pooled, DeLong 95% intervals), ``earliest.csv`` (the first logged step from which
each metric's interval stays off 0.5 to the end), ``remedies.csv`` (each remedy of the remedies arm
against its plain control on the same networks, paired), ``claims.csv`` and ``verdicts.md`` (the
literature's claims with number, interval, test and verdict), ``findings.md`` (the results page's
measured lines, written from these tables), ``runs_summary.csv`` and ``figures/``; the run in
``runs/``.

Usage: ``python scripts/reproduce_plasticity.py [--tiny] [--out DIR] [--force]``
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plasticity_claims as claims
import reproduce_common as common

from study import analysis, results

CONFIG = "plasticity_scr.toml"
PART = "scr"
# The remedies arm: ReLU with each remedy of section 9 and a plain control.
REMEDIES_CONFIG = "plasticity_scr_remedies.toml"
REMEDIES_PART = "remedies"
REMEDY_PREFIX = "relu+"  # a remedies arm learner's name: relu+<variant>
# One activation, a few hundred examples: one stream compile (the numbers mean nothing).
TINY = [
    "model.activation=['relu']",
    "train.steps=400",
    "train.log_every=100",
    "data.flip_every=100",
    "data.probe_size=64",
    "train.probe_steps=100",
]
ACTIVATION = "model.activation"
POOLED = "all"
ORDER = ["relu", "tanh", "leaky_relu"]
LABELS = {"relu": "ReLU", "tanh": "tanh", "leaky_relu": "leaky ReLU", POOLED: "pooled"}
# "Fails the probe": ends the probe above 1.5 times the fresh network's final loss on the same task
# (the definition study report shares: study.analysis.fails_probe).
FAIL_LOSS_FACTOR = analysis.PROBE_FAIL_LOSS_FACTOR
# The sensitivity check: less than half the fresh network's loss drop on the same fresh task.
FAIL_RATIO = 0.5
# "Heavily dormant": at least half of the hidden units dormant at the end.
DORMANT_SHARE = 0.5
# The outcomes auroc.csv predicts (runs' boolean columns made by outcomes()).
OUTCOMES = {
    "fails_probe": f"fails the probe (final loss > {FAIL_LOSS_FACTOR:g} x the fresh network's)",
    "dead_end": "dead at the end (all hidden units dead)",
    "fails_probe_ratio": f"fails the probe by its ratio (probe_ratio < {FAIL_RATIO:g})",
}
# The metrics of curves.parquet (layer 1 of the study's one hidden layer), with figure labels;
# the first group counts units, the second measures the layer or the network.
UNIT_METRICS = {
    "dead_units_l1": "dead units",
    "inactive_units_l1": "inactive units",
    "dormant_units_l1": "dormant units (Sokar's score)",
    "rarely_active_units_l1": "rarely active units (Dohare's dormant)",
    "zero_share_l1": "zero share (Plasticine's dormant)",
    "grad_dormant_units_l1": "gradient-dormant units",
    "always_active_units_l1": "always-active units",
}
LAYER_METRICS = {
    "effective_rank_l1": "effective rank",
    "srank_l1": "srank (99%)",
    "stable_rank_l1": "stable rank",
    "weight_magnitude_l1": "weight magnitude",
    "distance_from_start_l1": "distance from start",
    "grad_norm": "gradient norm",
    "error": "online error",
}
METRICS = {**UNIT_METRICS, **LAYER_METRICS}


def outcomes(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` without diverged rows, with the boolean outcomes ``fails_probe``,
    ``fails_probe_ratio``, ``heavily_dormant`` and ``log_loss_ratio``, the log of the network's
    final probe loss over the fresh network's on the same fresh task. A network whose own probe
    loss is not finite (its probe diverged) fails the probe both ways; its log ratio is left out
    of the means (``probe_finite``)."""
    valid = runs[~runs["diverged"].astype(bool)].copy()
    final, fresh = valid["probe_final_loss"], valid["probe_fresh_final_loss"]
    valid["probe_finite"] = np.isfinite(final) & np.isfinite(fresh)
    valid["fails_probe"] = analysis.fails_probe(valid)
    valid["fails_probe_ratio"] = ~(valid["probe_ratio"] >= FAIL_RATIO)  # NaN fails
    dormant = valid["dormant_units_end_l1"] >= DORMANT_SHARE * valid["model.width"]
    valid["heavily_dormant"] = dormant
    valid["log_loss_ratio"] = np.log(valid["probe_final_loss"] / fresh)
    valid["dead_end"] = valid["dead_end"].astype(bool)
    return valid


def by_activation(frame: pd.DataFrame):
    """``(learner, rows)`` for each activation present, in ORDER, then each learner of the
    remedies arm, then ``(POOLED, rows)``: the activations' rows only (the remedies arm's
    networks repeat the ReLU learner's streams)."""
    present = set(frame[ACTIVATION])
    for name in [a for a in ORDER if a in present] + sorted(present - set(ORDER)):
        yield name, frame[frame[ACTIVATION] == name]
    yield POOLED, frame[frame[ACTIVATION].isin(ORDER)]


def _proportion(name: str, events: pd.Series) -> dict:
    """``k_NAME``, ``p_NAME`` and its 95% Wilson bounds."""
    k, n = int(events.sum()), len(events)
    lo, hi = common.wilson(k, n)
    return {f"k_{name}": k, f"p_{name}": k / n, f"p_{name}_lo": lo[0], f"p_{name}_hi": hi[0]}


def _t_mean(name: str, values: pd.Series, null: float) -> dict:
    """Mean of ``values`` with its 95% t interval and the t test of ``mean = null``: ``NAME``,
    ``NAME_lo``, ``NAME_hi``, ``NAME_p`` over the finite values (NaN for fewer than two)."""
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return {name: values.mean(), f"{name}_lo": np.nan, f"{name}_hi": np.nan,
                f"{name}_p": np.nan}  # fmt: skip
    d, lo, hi, p = analysis.paired_t_test(values - null)
    return {name: d + null, f"{name}_lo": lo + null, f"{name}_hi": hi + null, f"{name}_p": p}


def group_against_fresh(group: str, rows: pd.DataFrame) -> dict:
    """The networks of one group against the fresh networks on their own fresh tasks (paired by
    task): ``GROUP_n``, the mean ``probe_ratio`` against 1 and the mean log final-loss ratio
    against 0 (t intervals and tests), and that mean as a ratio (``exp``)."""
    row = {f"{group}_n": len(rows)}
    row |= _t_mean(f"{group}_probe_ratio", rows["probe_ratio"], 1.0)
    log = _t_mean(f"{group}_log_loss_ratio", rows["log_loss_ratio"], 0.0)
    row |= log
    for suffix in ("", "_lo", "_hi"):
        row[f"{group}_loss_ratio{suffix}"] = np.exp(log[f"{group}_log_loss_ratio{suffix}"])
    return row


# The groups of networks compared with fresh ones: name -> rows of outcomes() in it.
GROUPS = {
    "dead": lambda frame: frame[frame["dead_end"]],
    "dormant": lambda frame: frame[frame["heavily_dormant"]],
    "not_dormant": lambda frame: frame[~frame["heavily_dormant"]],
}


def summary_table(valid: pd.DataFrame, n_networks: pd.Series) -> pd.DataFrame:
    """A row per activation and pooled (see the module's docstring); ``valid``: outcomes()'s,
    ``n_networks``: networks run per activation, diverged ones included."""
    rows = []
    for name, part in by_activation(valid):
        pooled = n_networks[n_networks.index.isin(ORDER)].sum()  # as by_activation pools
        total = int(pooled if name == POOLED else n_networks[name])
        row = {ACTIVATION: name, "n_networks": total, "n_valid": len(part)}
        row["n_probe_not_finite"] = int((~part["probe_finite"]).sum())
        row |= {"fail_loss_factor": FAIL_LOSS_FACTOR, "fail_ratio": FAIL_RATIO,
                "dormant_share": DORMANT_SHARE}  # fmt: skip
        row |= _proportion("dead_end", part["dead_end"])
        row |= _proportion("heavily_dormant", part["heavily_dormant"])
        row |= _t_mean("mean_probe_ratio", part["probe_ratio"], 1.0)
        row["median_probe_ratio"] = part["probe_ratio"].median()
        row |= _proportion("fails_probe", part["fails_probe"])
        row |= _proportion("fails_probe_ratio", part["fails_probe_ratio"])
        for group, select in GROUPS.items():
            row |= group_against_fresh(group, select(part))
        rows.append(row)
    return pd.DataFrame(rows)


def auroc_table(valid: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """:func:`study.analysis.metric_auroc` of every metric of METRICS in ``curves`` for every
    outcome of OUTCOMES, per activation and pooled: a row per (activation, outcome, metric,
    logged step)."""
    metrics = [name for name in METRICS if name in curves]
    parts = []
    for name, runs in by_activation(valid):
        own = curves if name == POOLED else curves[curves[ACTIVATION] == name]
        for outcome in OUTCOMES:
            table = analysis.metric_auroc(own, runs, runs[outcome], metrics)
            parts.append(table.assign(**{ACTIVATION: name, "outcome": outcome}))
    table = pd.concat(parts, ignore_index=True)
    return table[[ACTIVATION, "outcome", *[c for c in table if c not in (ACTIVATION, "outcome")]]]


# From which logged step a metric's AUROC interval stays off 0.5 (shared with study report).
sustained_from = analysis.sustained_from


def earliest_table(auroc: pd.DataFrame) -> pd.DataFrame:
    """Per (activation, outcome, metric): the first logged step from which the AUROC's 95%
    interval stays on one side of 0.5 up to the end (``first_step``, NaN if it does not end
    apart: :func:`sustained_from`), the AUROC there, and at the last step."""
    rows = []
    for (name, outcome, metric), part in auroc.groupby([ACTIVATION, "outcome", "metric"]):
        part = part.sort_values("step").reset_index(drop=True)
        start, last = sustained_from(part), part.iloc[-1]
        first = None if start is None else part.iloc[start]
        rows.append(
            {ACTIVATION: name, "outcome": outcome, "metric": metric,
             "first_step": np.nan if first is None else first["step"],
             "auroc_first": np.nan if first is None else first["auroc"],
             "last_step": last["step"], "auroc_last": last["auroc"],
             "auroc_last_lo": last["auroc_lo"], "auroc_last_hi": last["auroc_hi"]}
        )  # fmt: skip
    return pd.DataFrame(rows)


def run_study(args) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """The study's two ``study run``s, the activations and the remedies arm: ``(runs, curves,
    networks run per learner)``. A learner of the remedies arm is named in the activation column
    as ``relu+<variant>`` (``relu+baseline``: its plain ReLU control)."""
    parts = []
    tiny_remedies = [*TINY[1:], "variants.redo.train.intervention_every=200"]
    for part, config, tiny in (
        (PART, CONFIG, TINY),
        (REMEDIES_PART, REMEDIES_CONFIG, tiny_remedies),
    ):
        folder = args.out / "runs" / part
        started = time.perf_counter()
        runs, _ = common.run_sized(config, folder, args, tiny)
        common.say(f"{part}: {time.perf_counter() - started:.0f} s")
        curves = results.read_curves(folder)
        if part == REMEDIES_PART:
            runs, curves = (as_remedy_learners(frame) for frame in (runs, curves))
        parts.append((runs, curves))
    runs = pd.concat([p[0] for p in parts], ignore_index=True)
    curves = pd.concat([p[1] for p in parts], ignore_index=True)
    return runs, curves, runs.groupby(ACTIVATION).size()


def remedies_against_control(valid: pd.DataFrame) -> pd.DataFrame:
    """Each learner of the remedies arm against its plain control on the same networks (the
    same init index: the same stream and initial network): the share failing the probe under
    each, the paired difference (remedy minus control) with Newcombe's paired interval and
    McNemar's exact test, Holm over the remedies; and the mean log of the final probe loss over
    the fresh network's, paired t (a row per remedy)."""
    control_name = REMEDY_PREFIX + "baseline"
    control = valid[valid[ACTIVATION] == control_name].set_index("init")
    rows = []
    for name in sorted(set(valid[ACTIVATION]) - {control_name}):
        if not name.startswith(REMEDY_PREFIX):
            continue
        own = valid[valid[ACTIVATION] == name].set_index("init")
        shared = own.index.intersection(control.index)
        a, b = control.loc[shared, "fails_probe"], own.loc[shared, "fails_probe"]
        both, a_only = int((a & b).sum()), int((a & ~b).sum())
        b_only, neither = int((~a & b).sum()), int((~a & ~b).sum())
        lo, hi = analysis.newcombe_paired_interval(both, a_only, b_only, neither)
        finite = own.loc[shared, "probe_finite"] & control.loc[shared, "probe_finite"]
        logs = own.loc[shared, "log_loss_ratio"] - control.loc[shared, "log_loss_ratio"]
        d, d_lo, d_hi, p_t = analysis.paired_t_test(logs[finite])
        rows.append(
            {ACTIVATION: name, "n_networks": len(shared), "p_fails_control": a.mean(),
             "p_fails": b.mean(), "difference": b.mean() - a.mean(), "difference_lo": lo,
             "difference_hi": hi, "k_control_only": a_only, "k_remedy_only": b_only,
             "test": "mcnemar", "p_value": analysis.mcnemar_exact(a_only, b_only),
             "loss_ratio_vs_control": np.exp(d), "loss_ratio_vs_control_lo": np.exp(d_lo),
             "loss_ratio_vs_control_hi": np.exp(d_hi), "p_value_loss": p_t}
        )  # fmt: skip
    table = pd.DataFrame(rows)
    if len(table):
        table["p_holm"] = analysis.holm(table["p_value"])
    return table


def as_remedy_learners(frame: pd.DataFrame) -> pd.DataFrame:
    """The remedies arm's rows with their learner, ``relu+<variant>``, in the activation column
    (the key every table groups by)."""
    return frame.assign(**{ACTIVATION: REMEDY_PREFIX + frame["variant"]})


def main(argv=None) -> int:
    args = common.parse_args("plasticity", __doc__.splitlines()[0], argv)
    common.theme()
    started = time.perf_counter()
    runs, curves, n_networks = run_study(args)
    valid = outcomes(runs)
    summary = summary_table(valid, n_networks)
    auroc = auroc_table(valid, curves)
    common.write_table(summary, args.out, "summary.csv")
    common.write_table(auroc, args.out, "auroc.csv")
    earliest = earliest_table(auroc)
    common.write_table(earliest, args.out, "earliest.csv")
    common.write_table(remedies_against_control(valid), args.out, "remedies.csv")
    claim_table = claims.claims_table(summary, auroc, valid)
    common.write_table(claim_table, args.out, "claims.csv")
    claims.write_verdicts(claim_table, args.out)
    claims.write_findings(summary, earliest, args.out)
    folders = {part: args.out / "runs" / part for part in (PART, REMEDIES_PART)}
    common.write_table(common.runs_summary(folders), args.out, "runs_summary.csv")
    for name, _ in by_activation(valid):
        if name in ORDER or name == POOLED:  # the remedies arm: in the tables
            auroc_figure(auroc, args.out, name)
    probe_figure(valid, args.out)
    common.say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def auroc_figure(auroc: pd.DataFrame, out, activation: str) -> None:
    """AUROC against the logged step, a line per metric: a column per outcome (failing the probe,
    dead at the end), a row per group of metrics (unit counts; ranks, weights, gradients)."""
    outcomes_ = ["fails_probe", "dead_end"]
    part = auroc[(auroc[ACTIVATION] == activation) & auroc["outcome"].isin(outcomes_)]
    part = part.assign(thousands=part["step"] / 1e3)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True, sharey=True)
    for row, group in enumerate((UNIT_METRICS, LAYER_METRICS)):
        for column, outcome in enumerate(outcomes_):
            ax = axes[row, column]
            lines = part[(part["outcome"] == outcome) & part["metric"].isin(group)]
            lines = lines.assign(metric=lines["metric"].map(group))
            common.interval_lines(ax, lines, "thousands", "auroc", "metric", band=True,
                                  order=list(group.values()), max_markers=8)  # fmt: skip
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
            ax.set_ylim(0, 1)
            if row == 0:
                ax.set_title(OUTCOMES[outcome], fontsize=9)
            if row == 1:
                ax.set_xlabel("examples seen (thousands)")
            if column == 0:
                ax.set_ylabel("AUROC")
            if column == 1:
                ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    n = int(part["n_with"].iloc[0] + part["n_without"].iloc[0]) if len(part) else 0
    fig.suptitle(
        f"{LABELS.get(activation, activation)} ({n} networks): how well each metric at each step "
        "predicts the outcome at the end\n(bands: DeLong 95% intervals; above 0.5 high values "
        "predict it, below 0.5 low values do; no line: no network or every network has it)",
        fontsize=9,
    )
    common.save_figure(fig, out, f"auroc_{activation}")


# The probe figure's rows: the value, its axis label, the reference lines (value, style).
PROBE_ROWS = {
    "probe_ratio": ("probe loss drop / fresh network's", ((1.0, ":"), (FAIL_RATIO, "--"))),
    "loss_ratio": ("final probe loss / fresh network's", ((1.0, ":"), (FAIL_LOSS_FACTOR, "--"))),
}


def probe_figure(valid: pd.DataFrame, out) -> None:
    """The probe by the number of live hidden units at the end (width minus dead), a column per
    activation: ``probe_ratio`` and the final loss over the fresh network's (log scales), boxes
    (quartiles, whiskers at 1.5 IQR) with the networks' count under each."""
    names = [name for name, _ in by_activation(valid) if name in ORDER]
    frame = valid.assign(loss_ratio=np.exp(valid["log_loss_ratio"]))
    live_units = frame["model.width"] - frame["dead_units_end_l1"]
    # a column as wide as its boxes need, so that their counts fit under them
    ratios = [max(live_units[frame[ACTIVATION] == name].nunique(), 3) for name in names]
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 7), sharey="row",
                             squeeze=False, width_ratios=ratios)  # fmt: skip
    for column, name in enumerate(names):
        part = frame[frame[ACTIVATION] == name]
        live = live_units[frame[ACTIVATION] == name]
        levels = sorted(live.unique())
        for row, (value, (label, lines)) in enumerate(PROBE_ROWS.items()):
            ax = axes[row, column]
            finite = part[value].where(np.isfinite(part[value]))  # a diverged probe left out
            ax.boxplot([finite[live == k].dropna() for k in levels], positions=levels,
                       widths=0.6, flierprops={"markersize": 2})  # fmt: skip
            ax.set_yscale("symlog" if value == "probe_ratio" else "log", **(
                {"linthresh": 0.1} if value == "probe_ratio" else {}))  # fmt: skip
            for level, style in lines:
                ax.axhline(level, color="firebrick" if style == "--" else "grey", lw=0.8, ls=style)
            counts = [f"{k}\nn={int((live == k).sum())}" for k in levels]  # (n=1396) overlapped
            ax.set_xticks(levels, counts, fontsize=8)
            ax.set_ylabel(label if column == 0 else "")
        axes[0, column].set_title(LABELS.get(name, name), fontsize=9)
        axes[1, column].set_xlabel("live hidden units at the end")
    fig.suptitle(
        "The trainability probe by live units (dotted: as a fresh network; dashed: failing the "
        f"probe, by its ratio < {FAIL_RATIO:g} above, by its final loss > {FAIL_LOSS_FACTOR:g} "
        "times the fresh network's below)\nboxes: median and quartiles, whiskers to the last "
        "network within 1.5 IQR, the others as points; n: networks",
        fontsize=9,
    )
    common.save_figure(fig, out, "probe_by_live_units")


if __name__ == "__main__":
    common.exit_main(main)
