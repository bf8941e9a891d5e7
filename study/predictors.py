"""Which metric predicts lost plasticity: the tables of the report's section of that name.

For a run with the trainability probe (``train.probe_steps > 0``: ``probe_final_loss`` and
``probe_fresh_final_loss`` in runs.parquet) and plasticity metrics in curves.parquet: for each
outcome at the end of the run (failing the probe, :func:`study.analysis.fails_probe`; dead at the
end) and each metric of :func:`study.analysis.curve_metrics`, its AUROC at the last logged step
with DeLong's 95% interval (:func:`study.analysis.metric_auroc`) and the first logged step from
which the interval stays off 0.5 (:func:`study.analysis.sustained_from`). A table per setting
(variant and varying settings) where there are at most :data:`MAX_GROUPS`, else one pooled table.
Pandas only: the report reads tables without JAX.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from study import analysis

TITLE = "Which metric predicts lost plasticity"
# Runs' columns that mark a run with the trainability probe.
PROBE_COLUMNS = ("probe_final_loss", "probe_fresh_final_loss")
# Settings beyond which the section pools the networks (one table, with a note).
MAX_GROUPS = 4
# The kind (file stem before "__") of the figures of the AUROC against the step.
FIGURE = "auroc"
# DeLong's variance needs this many networks with and without the outcome (with one network on a
# side, analysis.auroc's interval degenerates to a point): fewer, and the section gives no interval.
MIN_PER_SIDE = 2

NOTE = (
    "How well each metric of curves.parquet, at each logged step, predicts an outcome at the end "
    "of the run: 'fails the probe' (its final loss on the probe's fresh task above "
    f"{analysis.PROBE_FAIL_LOSS_FACTOR:g} times that of a fresh network trained on the same task; "
    "a diverged probe fails) and 'dead at the end' (the network dead, dead_end). 'AUROC': at the "
    "last logged step, with its DeLong 95% interval (above 0.5 high values predict the outcome, "
    "below 0.5 low values do; n/a where no network or every network has it; no interval with "
    f"fewer than {MIN_PER_SIDE} networks with or without it); 'off 0.5 from step': the first "
    "logged step from which the interval excludes 0.5 at every later step (none: it does not at "
    "the last). Diverged networks are left out. The figures: the AUROC against the step, a line "
    "per metric (scripts/reproduce_plasticity.py draws them with their intervals)."
)


# The columns of metric_rows.
COLUMNS = ["outcome", "metric", "step", "auroc", "auroc_lo", "auroc_hi", "n_with", "n_without",
           "first_step"]  # fmt: skip


class Predictors(NamedTuple):
    """The section: its note and a ``(title, table)`` per group of networks."""

    note: str
    tables: list[tuple[str, pd.DataFrame]]


def outcomes(runs: pd.DataFrame) -> dict[str, pd.Series]:
    """The outcomes the section predicts: a boolean per row of ``runs``, by their labels."""
    return {
        "fails the probe": analysis.fails_probe(runs),
        "dead at the end": runs["dead_end"].astype(bool),
    }


def has_probe(runs: pd.DataFrame, curves: pd.DataFrame | None) -> bool:
    """Whether a run's tables have what the section needs: the probe's columns in the runs and
    at least one metric in the curves."""
    if curves is None or not all(name in runs for name in PROBE_COLUMNS):
        return False
    return bool(analysis.curve_metrics(curves))


def auroc_curves(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """:func:`study.analysis.metric_auroc` of every metric for each outcome (column ``outcome``,
    by its label): the figure's table."""
    metrics = analysis.curve_metrics(curves)
    parts = [
        analysis.metric_auroc(curves, runs, events, metrics).assign(outcome=outcome)
        for outcome, events in outcomes(runs).items()
    ]
    return pd.concat(parts, ignore_index=True).reindex(
        columns=["outcome", "metric", "step", "auroc"]
    )


def metric_rows(curves: pd.DataFrame, runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """A row per (outcome, metric), the numbers of the section's tables: ``outcome``,
    ``metric``, ``step`` (the last logged), ``auroc``, ``auroc_lo``, ``auroc_hi``, ``n_with``,
    ``n_without`` there, and ``first_step`` (NaN where the interval is not off 0.5 at the end).
    A step with fewer than :data:`MIN_PER_SIDE` networks on a side has no interval (NaN)."""
    rows = []
    for outcome, events in outcomes(runs).items():
        table = analysis.metric_auroc(curves, runs, events, metrics)
        if table.empty:  # no curve of these runs
            continue
        few = (table["n_with"] < MIN_PER_SIDE) | (table["n_without"] < MIN_PER_SIDE)
        table.loc[few, ["auroc_lo", "auroc_hi"]] = np.nan  # and never off 0.5 there
        for metric, part in table.groupby("metric", sort=False):
            part = part.sort_values("step").reset_index(drop=True)
            start = analysis.sustained_from(part)
            last = part.iloc[-1].drop("metric").to_dict()
            first = np.nan if start is None else part["step"].iloc[start]
            rows.append({"outcome": outcome, "metric": metric, **last, "first_step": first})
    return pd.DataFrame(rows, columns=COLUMNS)


def _readable(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`metric_rows` formatted for reading."""

    def area(row) -> str:
        if np.isnan(row["auroc"]):
            return "n/a"
        if np.isnan(row["auroc_lo"]):
            return f"{row['auroc']:.3f} [no interval: under {MIN_PER_SIDE} networks on a side]"
        return f"{row['auroc']:.3f} [{row['auroc_lo']:.3f}, {row['auroc_hi']:.3f}]"

    table = rows[["outcome", "metric"]].copy()
    table["step"] = rows["step"].astype(int)
    table["with / without"] = [f"{int(a)} / {int(b)}" for a, b in zip(
        rows["n_with"], rows["n_without"], strict=True)]  # fmt: skip
    table["AUROC [95% CI]"] = [area(row) for _, row in rows.iterrows()]
    first = rows["first_step"]
    table["off 0.5 from step"] = ["none" if np.isnan(s) else str(int(s)) for s in first]
    return table


def predictors(runs: pd.DataFrame, curves: pd.DataFrame | None) -> Predictors | None:
    """The section for a run's tables, or None when the runs lack the probe's columns, the
    curves (if any) lack every metric, or no curve belongs to a run that did not diverge."""
    if not has_probe(runs, curves):
        return None
    assert curves is not None  # has_probe
    metrics = analysis.curve_metrics(curves)
    axes = analysis.free_axes(runs, [])
    groups = list(runs.groupby(axes, sort=True)) if axes else [((), runs)]
    note = NOTE
    if len(groups) > MAX_GROUPS:
        note += f" The {len(groups)} settings are pooled ({', '.join(axes)} vary)."
        groups = [((), runs)]
    tables = []
    for values, rows in groups:
        values = values if isinstance(values, tuple) else (values,)
        title = ", ".join(f"{a} = {v}" for a, v in zip(axes, values, strict=False)) or "all"
        numbers = metric_rows(curves, rows, metrics)
        if len(numbers):
            tables.append((title, _readable(numbers)))
    return Predictors(note, tables) if tables else None
