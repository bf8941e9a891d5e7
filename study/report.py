"""``study report DIR``: ``report.md`` and a self-contained ``report.html`` for a results folder.

The report holds the run's facts (manifest), a verdict on each claim of the question and its
answers backed by the numbers of this run, the summary table and the figures. A claim whose test
needs settings the grid lacks is reported as "not tested by this run", never guessed.

Claims: (1) a network dead at initialization stays dead forever; (2) centering the data avoids
death; (3) the second ReLU layer dies even on centered inputs; (4) leaky ReLU avoids death;
(5) the bias matters.
"""

from __future__ import annotations

import base64
import html
import itertools
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from study import analysis, results, theory

NOT_TESTED = "Not tested by this run"


class Verdict(NamedTuple):
    """One claim: its statement, a one-word verdict, and the sentence of numbers behind it."""

    claim: str
    verdict: str
    evidence: str


def _pooled(rows: pd.DataFrame, metric: str) -> tuple[int, int]:
    """``(k, n)`` of a proportion column pooled over ``rows``, from the summary's counts."""
    n = "n_inits" if metric == "p_diverged" else "n_valid"
    return int(rows[f"k_{metric.removeprefix('p_')}"].sum()), int(rows[n].sum())


def _share(k: int, n: int) -> str:
    lo, hi = analysis.wilson_interval(k, n)
    return f"{k}/{n} = {k / n:.3f} [95% CI {lo:.3f}, {hi:.3f}]" if n else "no valid runs"


def _only(summary: pd.DataFrame, **values) -> pd.DataFrame:
    rows = summary
    for name, value in values.items():
        column = name.replace("__", ".")
        if column not in rows:
            return rows.iloc[0:0]
        rows = rows[rows[column] == value]
    return rows


def claim_dead_forever(summary: pd.DataFrame) -> Verdict:
    claim = "A ReLU network dead at initialization stays dead for the whole training."
    rows = _only(summary, model__activation="relu")
    total = int(rows["k_dead_init"].sum()) if len(rows) else 0
    if total == 0:
        return Verdict(claim, NOT_TESTED, "No network of this run was dead at initialization.")
    revived = int(rows["k_revived_dead_init"].sum())
    evidence = f"Networks dead at initialization that revived: {_share(revived, total)}."
    return Verdict(claim, "Supported" if revived == 0 else "Contradicted", evidence)


def claim_centering(summary: pd.DataFrame) -> Verdict:
    claim = "Centering the data (offset 0, or standardizing it) avoids dead ReLU networks."
    rows = _only(summary, model__activation="relu", model__depth=1)
    if "data.offset" not in rows:
        return Verdict(claim, NOT_TESTED, "The grid has no one-layer ReLU setting.")
    standardized = (
        rows["data.standardize"].astype(str) == "True"
        if "data.standardize" in rows
        else pd.Series(False, index=rows.index)
    )
    centered = rows[(rows["data.offset"] == 0) | standardized]
    shifted = rows[(rows["data.offset"] > 0) & ~standardized]
    if centered.empty:
        return Verdict(
            claim,
            NOT_TESTED,
            "The grid has no one-layer ReLU setting on centered (offset 0 or standardized) data.",
        )
    if shifted.empty:
        return Verdict(claim, NOT_TESTED, "The grid has no positive offset to compare with.")
    far = shifted[shifted["data.offset"] == shifted["data.offset"].max()]
    offset = far["data.offset"].iloc[0]
    init_0, end_0 = _pooled(centered, "p_dead_init"), _pooled(centered, "p_dead_end")
    init_far, end_far = _pooled(far, "p_dead_init"), _pooled(far, "p_dead_end")
    evidence = (
        f"One ReLU layer, dead at init: {_share(*init_0)} on centered data vs "
        f"{_share(*init_far)} at offset {offset:g}; dead at the end: {_share(*end_0)} vs "
        f"{_share(*end_far)}."
    )
    if init_0[0] == 0 and end_0[0] == 0:
        verdict = "Supported"
    elif init_0[0] == 0:
        verdict = "Partly supported (no death at init, but networks die during training)"
    else:
        verdict = "Not supported"
    return Verdict(claim, verdict, evidence)


def claim_second_layer(summary: pd.DataFrame) -> Verdict:
    claim = "A second ReLU layer dies even on centered inputs."
    rows = _only(summary, model__activation="relu")
    if "model.depth" not in rows or "data.offset" not in rows:
        return Verdict(claim, NOT_TESTED, "The grid has no ReLU setting with depth.")
    rows = rows[(rows["model.depth"] >= 2) & (rows["data.offset"] == 0)]
    if rows.empty or "dead_frac_init_l2" not in rows:
        return Verdict(claim, NOT_TESTED, "The grid has no ReLU setting of depth >= 2 at offset 0.")
    parts, any_dead = [], False
    for width, group in rows.groupby("model.width"):
        k, n = _pooled(group, "p_dead_init")
        any_dead |= k > 0 and analysis.wilson_interval(k, n)[0] > 0
        fraction = float(np.average(group["dead_frac_init_l2"], weights=group["n_valid"]))
        bound = theory.p_dead_nonnegative_bound(int(width))
        parts.append(
            f"width {width}: network dead at init {_share(k, n)}; dead second-layer units "
            f"{fraction:.3f} (lower bound 2^-{width} = {bound:.3f})"
        )
    verdict = "Supported" if any_dead else "Not supported"
    return Verdict(claim, verdict, "At offset 0, " + "; ".join(parts) + ".")


def claim_leaky(summary: pd.DataFrame) -> Verdict:
    claim = "Leaky ReLU avoids dead networks."
    leaky = _only(summary, model__activation="leaky_relu")
    if leaky.empty:
        return Verdict(claim, NOT_TESTED, "The grid has no leaky_relu setting.")
    init, end = _pooled(leaky, "p_dead_init"), _pooled(leaky, "p_dead_end")
    evidence = f"leaky_relu dead at init {_share(*init)}, at the end {_share(*end)}"
    relu = _only(summary, model__activation="relu")
    if len(relu):
        evidence += f"; relu in this run: dead at the end {_share(*_pooled(relu, 'p_dead_end'))}"
    verdict = "Supported" if init[0] == 0 and end[0] == 0 else "Contradicted"
    return Verdict(claim, verdict, evidence + ".")


def claim_bias(summary: pd.DataFrame) -> Verdict:
    claim = "The bias (its presence or initialization) changes how often networks die."
    rows = _only(summary, model__activation="relu")
    if "model.bias_init" in rows:  # the bias scale matters only for a random or constant bias
        random_bias = rows[rows["model.bias_init"] != "zeros"]
    else:
        random_bias = rows.iloc[0:0]
    candidates = [(c, rows) for c in ("model.bias_init", "model.bias")]
    candidates.append(("model.bias_scale", random_bias))
    axis, rows = next(
        ((c, r) for c, r in candidates if c in r and r[c].nunique() > 1), (None, rows)
    )
    if axis is None:
        return Verdict(
            claim,
            NOT_TESTED,
            "The grid does not vary model.bias_init, model.bias or the scale of a random bias.",
        )
    levels = sorted(rows[axis].unique(), key=str)
    parts, p_values = [], []
    for metric, when in (("p_dead_init", "at init"), ("p_dead_end", "at the end")):
        counts = {level: _pooled(rows[rows[axis] == level], metric) for level in levels}
        parts.append(
            f"dead {when}: " + ", ".join(f"{axis} = {lv}: {_share(*counts[lv])}" for lv in levels)
        )
        for first, second in itertools.combinations(levels, 2):
            if counts[first][1] and counts[second][1]:
                p_values.append(analysis.two_proportion_test(*counts[first], *counts[second])[1])
    adjusted = analysis.holm(p_values) if p_values else np.array([1.0])
    significant = bool((adjusted < 0.05).any())
    verdict = "Supported" if significant else "Not supported (no significant difference)"
    evidence = (
        "ReLU, pooled over the other settings; "
        + "; ".join(parts)
        + f"; pairs of levels tested, Holm-adjusted: smallest p = {adjusted.min():.3g}."
    )
    return Verdict(claim, verdict, evidence)


CLAIMS = (claim_dead_forever, claim_centering, claim_second_layer, claim_leaky, claim_bias)


def verdicts(summary: pd.DataFrame) -> list[Verdict]:
    """The five claims judged on one run's summary table."""
    return [judge(summary) for judge in CLAIMS]


# --------------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------------


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's varying settings and main estimates, formatted for reading."""
    settings = analysis.free_axes(summary, [])
    table = summary[settings].copy()
    table["n"] = summary["n_inits"]

    def with_ci(name):
        return [
            "n/a" if np.isnan(p) else f"{p:.3f} [{lo:.3f}, {hi:.3f}]"
            for p, lo, hi in zip(
                summary[name], summary[f"{name}_lo"], summary[f"{name}_hi"], strict=True
            )
        ]

    table["dead at init"] = with_ci("p_dead_init")
    table["theory"] = [
        "" if np.isnan(v) else f"{v:.3f}" + (" (!)" if flag else "")
        for v, flag in zip(summary["p_dead_init_theory"], summary["theory_disagrees"], strict=True)
    ]
    table["dead at end"] = with_ci("p_dead_end")
    table["revived"] = [f"{v:.3f}" for v in summary["p_revived"]]
    table["diverged"] = [f"{v:.3f}" for v in summary["p_diverged"]]
    table["accuracy"] = [f"{v:.3f}" for v in summary["mean_final_accuracy"]]
    return table


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def _facts(manifest: results.Manifest, summary: pd.DataFrame) -> list[str]:
    """The run's facts; no timings, so that a rerun writes the same report."""
    facts = [
        f"settings: {len(summary)}, initializations per setting: "
        f"{int(summary['n_inits'].min())}-{int(summary['n_inits'].max())}",
        f"study: {manifest.config.get('name', '?')}, seed {manifest.seed}",
    ]
    if manifest.backend:
        facts.append(f"backend: {manifest.backend}, devices: {list(manifest.devices)}")
    return facts


THEORY_NOTE = (
    "Intervals are 95% Wilson intervals over the initializations that did not diverge. "
    "'theory' is the closed-form P(dead at init) where one applies to this setting and data "
    "(docs/theory.md); (!) marks a setting whose estimate disagrees with it beyond the interval."
)


def render_markdown(folder: Path, summary, manifest, judged, figures) -> str:
    lines = [f"# Dying-ReLU study report: {folder.name}", ""]
    lines += [f"- {fact}" for fact in _facts(manifest, summary)]
    lines += ["", "## Claims", ""]
    for i, v in enumerate(judged, 1):
        lines += [f"{i}. **{v.claim}** {v.verdict}. {v.evidence}", ""]
    lines += ["## Summary", "", THEORY_NOTE, "", _markdown_table(summary_table(summary)), ""]
    if figures:
        lines += ["## Figures", ""]
        for path in figures:
            lines += [f"![{path.stem}](figures/{path.name})", ""]
    return "\n".join(lines)


def render_html(folder: Path, summary, manifest, judged, figures) -> str:
    esc = html.escape
    body = [f"<h1>Dying-ReLU study report: {esc(folder.name)}</h1>", "<ul>"]
    body += [f"<li>{esc(fact)}</li>" for fact in _facts(manifest, summary)]
    body += ["</ul>", "<h2>Claims</h2>", "<ol>"]
    for v in judged:
        body.append(f"<li><b>{esc(v.claim)}</b> <i>{esc(v.verdict)}.</i> {esc(v.evidence)}</li>")
    body += ["</ol>", "<h2>Summary</h2>", f"<p>{esc(THEORY_NOTE)}</p>"]
    body.append(summary_table(summary).to_html(index=False, border=0, escape=True))
    if figures:
        body.append("<h2>Figures</h2>")
        for path in figures:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{esc(path.stem)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(path.stem)}</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;font-size:0.85em}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ccc;text-align:right}img{max-width:100%}"
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>Report {esc(folder.name)}</title><style>{style}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(folder) -> tuple[Path, Path]:
    """Write ``DIR/report.md`` and ``DIR/report.html``; draws the figures if there are none."""
    from study import plots

    folder = Path(folder)
    summary = results.read_summary(folder)
    manifest = results.read_manifest(folder)
    figures = results.figure_files(folder) or [
        p for p in plots.plot_results(folder) if p.suffix == ".png"
    ]
    judged = verdicts(summary)
    return results.write_report(
        folder,
        render_markdown(folder, summary, manifest, judged, figures),
        render_html(folder, summary, manifest, judged, figures),
    )


def headline(summary: pd.DataFrame) -> list[str]:
    """A few lines that answer the question for a run's grid, for the end of ``study run``.

    The settings with the highest and lowest P(dead at end) with their intervals, how many
    networks dead at initialization or during training came back, and any setting whose
    estimate disagrees with its closed form.
    """
    settings = analysis.free_axes(summary, [])
    ranked = summary[summary["n_valid"] > 0].sort_values("p_dead_end", kind="stable")

    def describe(row) -> str:
        where = ", ".join(f"{name} = {row[name]}" for name in settings) or "the one setting"
        k, n = int(row["k_dead_end"]), int(row["n_valid"])
        return f"{where}: {_share(k, n)}"

    lines = []
    if len(ranked):
        lines.append(f"highest P(dead at end): {describe(ranked.iloc[-1])}")
        if len(ranked) > 1:
            lines.append(f"lowest P(dead at end):  {describe(ranked.iloc[0])}")
    dead_init, revived_init = (
        int(summary["k_dead_init"].sum()),
        int(summary["k_revived_dead_init"].sum()),
    )
    lines.append(
        f"revived: {int(summary['k_revived'].sum())} networks came back after being dead at a "
        f"logged step ({revived_init} of the {dead_init} dead at initialization)"
    )
    disagree = summary[summary["theory_disagrees"].astype(bool)]
    if len(disagree):
        lines.append(
            f"theory disagrees with the estimate in {len(disagree)} setting(s): see the report"
        )
    return lines
