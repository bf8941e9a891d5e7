"""Remedies study, the verdicts (issue 24, item 7): one line per task and remedy, written from
``summary.csv`` alone, so that every number of the remedies page can be traced to it.

A change in P(dead at end) is "fewer dead" or "more dead" only where its Holm-adjusted paired
test says so (``p_holm`` < ``ALPHA``); otherwise it is "no significant change" with the
equivalence margin its interval gives (``max_change``: the 95% interval excludes every change
larger than that), never "no effect". A remedy under which no network can be dead (``cannot_die``)
is marked so, untested. The cost is the paired change in mean final loss and in accuracy, with
95% intervals (not corrected for multiplicity: read them as the size of the cost).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ALPHA = 0.05
TASK_NAMES = {"question": "1. question", "two_layers": "2. two layers", "lu_abs": "3. |x| fit"}
COLUMNS = ["task", "remedy", "strength", "p_dead_end", "change", "verdict", "loss_change"]
COLUMNS += ["accuracy_change", "source"]


def interval(value: float, low: float, high: float, digits: int = 3) -> str:
    return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def death_verdict(row: pd.Series) -> str:
    """The verdict on P(dead at end) against the baseline, from the row's test and interval."""
    if row["cannot_die"]:
        return "none dead by definition (not tested)"
    if row["p_holm"] < ALPHA:
        direction = "fewer" if row["diff_p_dead_end"] < 0 else "more"
        return f"{direction} dead (Holm p {row['p_holm']:.2g})"
    return (
        f"no significant change (Holm p {row['p_holm']:.2g}; none beyond ±{row['max_change']:.3f})"
    )


def verdict_table(summary: pd.DataFrame) -> pd.DataFrame:
    """A row per compared (task, remedy) of ``summary``: P(dead at end) with its Wilson interval,
    its paired change with saved and killed networks, the verdict, the costs and the source."""
    rows = summary[summary["p_value"].notna() | summary["cannot_die"].eq(True)]
    rows = rows[rows["variant"] != "baseline"]
    table = pd.DataFrame(
        {
            "task": rows["task"],
            "remedy": rows["remedy"],
            "strength": np.where(
                rows["strength"] == "tuned",
                [f"tuned: {v:g}" if pd.notna(v) else "tuned" for v in rows["tuned_value"]],
                "source",
            ),
            "p_dead_end": [
                f"{p:.3f} [{lo:.3f}, {hi:.3f}]"
                for p, lo, hi in rows[["p_dead_end", "p_dead_end_lo", "p_dead_end_hi"]].to_numpy()
            ],
            "change": [
                f"{interval(*values)} ({int(saved)} saved, {int(killed)} killed)"
                for *values, saved, killed in rows[
                    ["diff_p_dead_end", "diff_p_dead_end_lo", "diff_p_dead_end_hi"]
                    + ["saved", "killed"]
                ].to_numpy()
            ],
            "verdict": rows.apply(death_verdict, axis=1),
            "loss_change": [interval(*v, 4) for v in rows[bounded("diff_final_loss")].to_numpy()],
            "accuracy_change": [
                interval(*v) if np.isfinite(v[0]) else ""
                for v in rows[bounded("diff_final_accuracy")].to_numpy()
            ],
            "source": rows["source"],
        }
    )
    return table[COLUMNS].reset_index(drop=True)


def bounded(name: str) -> list[str]:
    return [name, f"{name}_lo", f"{name}_hi"]


def markdown(verdicts: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The verdicts as Markdown: a table per task under its baseline's numbers."""
    out = ["<!-- written by scripts/reproduce_remedies.py from summary.csv; do not edit -->", ""]
    header = ["remedy", "strength", "P(dead at end)", "change, paired", "verdict"]
    header += ["final loss change", "accuracy change"]
    for task, rows in verdicts.groupby("task", sort=False):
        base = summary[(summary["task"] == task) & (summary["variant"] == "baseline")].iloc[0]
        out += [
            f"**{TASK_NAMES.get(task, task)}**: baseline P(dead at end) {base['p_dead_end']:.3f} "
            f"[{base['p_dead_end_lo']:.3f}, {base['p_dead_end_hi']:.3f}], final loss "
            f"{base['final_loss']:.4f} (best constant {base['constant_loss']:.4f}; networks alive "
            f"at the end {base['final_loss_alive']:.4f}), n = {int(base['n_valid'])} "
            "(tuned rows: the other half)",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for row in rows.itertuples():
            cells = [row.remedy, row.strength, row.p_dead_end, row.change, row.verdict]
            out.append("| " + " | ".join([*cells, row.loss_change, row.accuracy_change]) + " |")
        out.append("")
    return "\n".join(out)
