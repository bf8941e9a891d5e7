"""Plasticity study, the claims (issue 26, item 5): each claim from the literature that the study
tests, per activation and pooled, with its number, 95% interval, test and verdict, written from the
study's own tables (``summary.csv``, ``auroc.csv``) so that every number of its page is traced;
and the page's measured lines (``findings.md``) from the same tables.

A verdict says what the source claims and what the interval allows; it never reads "no effect"
into an interval that includes 0.5 (or 1), and says "cannot decide" where a group is too small
(fewer than ``MIN_GROUP`` networks) or an outcome has no network on one side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import reproduce_common as common

from study import analysis

ALPHA = 0.05
MIN_GROUP = 10
ACTIVATION = "model.activation"
# The learners the pooled ("all") rows pool: the activations, not the remedies arm's ReLU learners
# (reproduce_plasticity.ORDER).
POOLED_LEARNERS = ("relu", "tanh", "leaky_relu")
# The sources, as the issue and docs/plasticity_metrics.md name them (no volume or issue number:
# verdicts.md's lines go onto the results page, where every number must come from a table).
DOHARE = "Dohare et al. 2024, Nature; Sokar et al. 2023, ICML"
RECENT = "the two 2026 papers the issue cites (not named there)"
CLAIMS = {
    "death": (
        "death predicts lost plasticity",
        DOHARE,
        "loss of plasticity comes with a rising share of dead or dormant units (Dohare: and with "
        "growing weights and a falling effective rank)",
    ),
    "rank": (
        "representation rank can fail to predict lost plasticity",
        RECENT,
        "the usual proxies (representation rank, NTK rank) can fail to predict whether a network "
        "can still learn (a handful of runs)",
    ),
    "dormant": (
        "heavily dormant networks still learn a fresh task as well as fresh ones",
        RECENT,
        "networks with many dormant units can learn a new task as well as fresh networks (a "
        "handful of runs)",
    ),
}
# The unit counts claim "death" reads: ours, and Dohare's own "dormant".
DEATH_METRICS = {
    "dead_units_l1": "dead units",
    "rarely_active_units_l1": "rarely active units (Dohare's dormant)",
}
# Pooled rows mix learners that differ in how often they die and fail the probe.
POOLED_NOTE = " (pooled over the learners, which differ in both: read the per-learner rows)"
COLUMNS = ["claim", "source", "source_says", ACTIVATION, "measure", "n", "value", "lo", "hi"]
COLUMNS += ["test", "p_value", "verdict", "min_group"]


def _last(auroc: pd.DataFrame, activation: str, outcome: str, metric: str) -> pd.Series:
    """The row of ``auroc.csv`` at the last logged step."""
    rows = auroc[
        (auroc[ACTIVATION] == activation)
        & (auroc["outcome"] == outcome)
        & (auroc["metric"] == metric)
    ]
    return rows.sort_values("step").iloc[-1]


def auroc_verdict(row: pd.Series, expected: str, predicts: str, fails: str) -> str:
    """The verdict on one AUROC: ``predicts`` where its interval leaves 0.5 on the ``expected``
    side ("high": high values go with the outcome, AUROC above 0.5; "low": below), the opposite
    finding where it leaves 0.5 on the other side, ``fails`` where it includes 0.5, and "cannot
    decide" where either side of the outcome is empty or the metric is the same everywhere."""
    if np.isnan(row["auroc"]):
        return "cannot decide: no network on one side of the outcome"
    if row["auroc_lo"] == row["auroc_hi"] == 0.5:
        return "cannot decide: the metric takes one value on every network"
    if row["auroc_lo"] > 0.5 or row["auroc_hi"] < 0.5:
        side = "high" if row["auroc"] > 0.5 else "low"
        if side == expected:
            return predicts
        other = "low" if expected == "high" else "high"
        return f"opposite here: {other} values go with the outcome (interval beyond 0.5)"
    return fails


def _auroc_row(claim: str, activation: str, measure: str, row: pd.Series, verdict: str) -> dict:
    return {"claim": claim, ACTIVATION: activation, "measure": measure,
            "n": int(row["n_with"] + row["n_without"]), "value": row["auroc"],
            "lo": row["auroc_lo"], "hi": row["auroc_hi"], "test": "DeLong 95% interval",
            "p_value": np.nan, "verdict": verdict}  # fmt: skip


def death_rows(auroc: pd.DataFrame, valid: pd.DataFrame, activation: str) -> list[dict]:
    """Claim "death": the AUROC of the dead units and of Dohare's dormant (rarely active) units at
    the end for failing the probe, and the difference of the failure rates of dead and other
    networks (Newcombe's interval; Fisher's or the z test)."""
    rows = []
    for metric, name in DEATH_METRICS.items():
        row = _last(auroc, activation, "fails_probe", metric)
        verdict = auroc_verdict(row, "high", f"supported here: more {name}, more failing",
                                "not supported here: the interval includes 0.5")  # fmt: skip
        measure = f"AUROC of {name} at the end, fails the probe"
        rows.append(_auroc_row("death", activation, measure, row, verdict))
    dead, alive = valid[valid["dead_end"]], valid[~valid["dead_end"]]
    measure = "P(fails, dead at the end) - P(fails, not dead)"
    if min(len(dead), len(alive)) < MIN_GROUP:
        rows.append({"claim": "death", ACTIVATION: activation, "measure": measure,
                     "n": len(valid), "verdict": f"cannot decide: {len(dead)} dead networks, "
                     f"{len(alive)} others (fewer than {MIN_GROUP})"})  # fmt: skip
        return rows
    k1, n1, k2, n2 = (
        int(alive["fails_probe"].sum()),
        len(alive),
        int(dead["fails_probe"].sum()),
        len(dead),
    )
    lo, hi = analysis.newcombe_interval(k1, n1, k2, n2)
    test, p = analysis.two_proportion_test(k1, n1, k2, n2)
    d = k2 / n2 - k1 / n1
    verdict = (f"{'more' if d > 0 else 'fewer'} dead networks fail the probe (p {p:.2g})"
               if p < ALPHA else f"no significant difference (p {p:.2g})")  # fmt: skip
    rows.append({"claim": "death", ACTIVATION: activation, "measure": measure, "n": n1 + n2,
                 "value": d, "lo": lo, "hi": hi, "test": test, "p_value": p,
                 "verdict": verdict})  # fmt: skip
    return rows


def rank_rows(auroc: pd.DataFrame, activation: str) -> list[dict]:
    """Claim "rank": the AUROC of the effective rank and the srank at the end for failing the
    probe. Where a rank predicts it, the claim (that it *can* fail) is not refuted: it is about
    other settings; the verdict says so."""
    rows = []
    for metric, name in (("effective_rank_l1", "effective rank"), ("srank_l1", "srank")):
        row = _last(auroc, activation, "fails_probe", metric)
        verdict = auroc_verdict(
            row,
            "low",
            f"here a low {name} predicts failing the probe; the claim that it can fail elsewhere "
            "is neither shown nor refuted",
            f"consistent with the claim: here the {name} does not predict failing the probe "
            "(the interval includes 0.5)",
        )
        rows.append(_auroc_row("rank", activation, f"AUROC of the {name} at the end, fails the "
                               "probe", row, verdict))  # fmt: skip
    return rows


def dormant_rows(summary_row: pd.Series, valid: pd.DataFrame, activation: str) -> list[dict]:
    """Claim "dormant": for heavily dormant and for dead networks, the geometric mean of the
    final probe loss over the fresh network's on the same fresh task (paired t on the logs), and
    the heavily dormant networks against the other trained ones (:func:`dormant_vs_others`)."""
    rows = []
    for group, name in (("dormant", "heavily dormant"), ("dead", "dead")):
        n = int(summary_row[f"{group}_n"])
        measure = f"{name} networks: final probe loss / fresh network's (geometric mean)"
        row = {"claim": "dormant", ACTIVATION: activation, "measure": measure, "n": n,
               "test": "paired t on log final losses"}  # fmt: skip
        if n < MIN_GROUP:
            rows.append(row | {"verdict": f"cannot decide: {n} {name} networks (fewer than "
                               f"{MIN_GROUP})"})  # fmt: skip
            continue
        value, lo, hi = (summary_row[f"{group}_loss_ratio{s}"] for s in ("", "_lo", "_hi"))
        p = summary_row[f"{group}_log_loss_ratio_p"]
        if p >= ALPHA:
            verdict = (f"consistent: no significant difference (p {p:.2g}); the interval allows "
                       f"{lo:.3g} to {hi:.3g} times the fresh network's final loss")  # fmt: skip
        elif value > 1:
            verdict = (
                f"contradicted here: they end {value:.3g} times above fresh networks (p {p:.2g})"
            )
        else:
            verdict = f"here they end below fresh networks, {value:.3g} times (p {p:.2g})"
        rows.append(row | {"value": value, "lo": lo, "hi": hi, "p_value": p, "verdict": verdict})
    return rows + [dormant_vs_others(valid, activation)]


def dormant_vs_others(valid: pd.DataFrame, activation: str) -> dict:
    """The heavily dormant networks' final probe loss against the other trained networks': the
    ratio of their geometric means over their fresh networks' (Welch's t on the log ratios), which
    says whether dormancy, or training itself, goes with ending above a fresh network."""
    dormant = valid.loc[valid["heavily_dormant"], "log_loss_ratio"]
    others = valid.loc[~valid["heavily_dormant"], "log_loss_ratio"]
    measure = "heavily dormant / other trained networks: their final-loss ratios (geometric mean)"
    row = {"claim": "dormant", ACTIVATION: activation, "measure": measure,
           "n": len(dormant) + len(others), "test": "Welch t on log final-loss ratios"}  # fmt: skip
    if min(len(dormant), len(others)) < MIN_GROUP:
        return row | {"verdict": f"cannot decide: {len(dormant)} heavily dormant networks, "
                      f"{len(others)} others (fewer than {MIN_GROUP})"}  # fmt: skip
    d, lo, hi, p = analysis.welch_test(others, dormant)
    if p >= ALPHA:
        verdict = (f"no significant difference from other trained networks (p {p:.2g}; the "
                   f"interval allows {np.exp(lo):.3g} to {np.exp(hi):.3g} times)")  # fmt: skip
    else:
        side = "above" if d > 0 else "below"
        verdict = f"they end {side} other trained networks, {np.exp(d):.3g} times (p {p:.2g})"
    return row | {"value": np.exp(d), "lo": np.exp(lo), "hi": np.exp(hi), "p_value": p,
                  "verdict": verdict}  # fmt: skip


def claims_table(summary: pd.DataFrame, auroc: pd.DataFrame, valid: pd.DataFrame) -> pd.DataFrame:
    """A row per (claim, activation or pooled, measure): see the module's docstring."""
    rows = []
    for _, summary_row in summary.iterrows():
        activation = summary_row[ACTIVATION]
        pooled = valid[valid[ACTIVATION].isin(POOLED_LEARNERS)]  # the remedies arm apart
        own = pooled if activation == "all" else valid[valid[ACTIVATION] == activation]
        rows += death_rows(auroc, own, activation)
        rows += rank_rows(auroc, activation)
        rows += dormant_rows(summary_row, own, activation)
    table = pd.DataFrame(rows)
    pooled = (table[ACTIVATION] == "all") & table["value"].notna()
    table.loc[pooled, "verdict"] += POOLED_NOTE
    for claim, (text, source, says) in CLAIMS.items():
        at = table["claim"] == claim
        table.loc[at, "source"], table.loc[at, "source_says"] = source, says
        table.loc[at, "claim"] = text
    table["min_group"] = MIN_GROUP  # the verdicts' "fewer than" quotes it
    return table.reindex(columns=COLUMNS)


def _interval(row: pd.Series) -> str:
    if pd.isna(row["value"]):
        return "-"
    return f"{row['value']:.3g} [{row['lo']:.3g}, {row['hi']:.3g}]"


def write_verdicts(table: pd.DataFrame, out: Path) -> Path:
    """``verdicts.md``: the claims table as Markdown, a line per row."""
    lines = ["| claim (source) | activation | measure | value [95%] | n | test | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for _, row in table.iterrows():
        lines.append(
            f"| {row['claim']} ({row['source']}) | {row[ACTIVATION]} | {row['measure']} | "
            f"{_interval(row)} | {row['n']} | {row['test']} | {row['verdict']} |"
        )
    path = out / "verdicts.md"
    path.write_text("\n".join(lines) + "\n")
    common.say(f"wrote {path}")
    return path


def _share(row: pd.Series, name: str) -> str:
    return (f"{row[f'k_{name}']}/{row['n_valid']} = {row[f'p_{name}']:.3g} "
            f"[{row[f'p_{name}_lo']:.3g}, {row[f'p_{name}_hi']:.3g}]")  # fmt: skip


def _ratio(row: pd.Series, group: str) -> str:
    if row[f"{group}_n"] < 2:
        return f"{row[f'{group}_n']} networks"
    values = (row[f"{group}_loss_ratio{s}"] for s in ("", "_lo", "_hi"))
    return "{:.3g} [{:.3g}, {:.3g}]".format(*values) + f" ({row[f'{group}_n']} networks)"


def finding_lines(summary: pd.DataFrame, earliest: pd.DataFrame) -> list[str]:
    """The results page's measured lines: per activation and pooled, the shares dead, heavily
    dormant and failing the probe (both ways), the final-loss ratio to fresh networks by group,
    and the metrics whose AUROC for failing the probe leaves 0.5 earliest."""
    lines = []
    for _, row in summary.iterrows():
        name = row[ACTIVATION]
        lines += [
            f"- *{name}*: dead at the end {_share(row, 'dead_end')}; heavily dormant "
            f"{_share(row, 'heavily_dormant')}; fails the probe {_share(row, 'fails_probe')} "
            f"(by its ratio: {_share(row, 'fails_probe_ratio')}); median probe_ratio "
            f"{row['median_probe_ratio']:.3g}. Final probe loss over the fresh network's "
            f"(geometric mean): dead {_ratio(row, 'dead')}, heavily dormant "
            f"{_ratio(row, 'dormant')}, the others {_ratio(row, 'not_dormant')}."
        ]
        own = earliest[(earliest[ACTIVATION] == name) & (earliest["outcome"] == "fails_probe")]
        own = own.dropna(subset=["first_step"]).sort_values(["first_step", "metric"])
        found = ", ".join(
            f"{r['metric']} at {r['first_step']:.0f} (AUROC {r['auroc_first']:.3g}; at the end "
            f"{r['auroc_last']:.3g} [{r['auroc_last_lo']:.3g}, {r['auroc_last_hi']:.3g}])"
            for _, r in own.head(3).iterrows()
        )
        lines.append(f"  Earliest predictors of failing the probe: {found or 'none'}.")
    return lines


def write_findings(summary: pd.DataFrame, earliest: pd.DataFrame, out: Path) -> Path:
    """``findings.md``: :func:`finding_lines`, to paste into docs/results/8-plasticity.md."""
    path = out / "findings.md"
    path.write_text("\n".join(finding_lines(summary, earliest)) + "\n")
    common.say(f"wrote {path}")
    return path
