"""``study report DIR``: ``report.md`` and a self-contained ``report.html`` for a results folder.

The report holds the run's facts (manifest), a verdict on each claim of the question and its
answers backed by the numbers of this run, the summary table and the figures. A claim whose test
needs settings the grid lacks is reported as "not tested by this run", never guessed.
A run with the trainability probe also gets the section "Which metric predicts lost plasticity"
(:mod:`study.predictors`).

Claims: (1) a network dead at initialization stays dead forever; (2) centering the data avoids
death; (3) the second ReLU layer dies even on centered inputs; (4) leaky ReLU avoids death;
(5) the bias matters.
"""

from __future__ import annotations

import base64
import html
import itertools
import re
import struct
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from study import analysis, predictors, results, theory
from study.config import STREAMS

NOT_TESTED = "Not tested by this run"


BY_DEFINITION = "By definition"


class Verdict(NamedTuple):
    """One claim: its statement, a one-word verdict, and the sentence of numbers behind it.

    A claim that holds by definition (:data:`BY_DEFINITION`) has the reason as ``evidence`` and
    the run's counts, which the definition fixes and which are no evidence, in ``measured``.
    """

    claim: str
    verdict: str
    evidence: str
    measured: str = ""


def _pooled(rows: pd.DataFrame, metric: str) -> tuple[int, int]:
    """``(k, n)`` of a proportion column pooled over ``rows``, from the summary's counts."""
    n = "n_inits" if metric == "p_diverged" else "n_valid"
    return int(rows[f"k_{metric.removeprefix('p_')}"].sum()), int(rows[n].sum())


def probability(value: float) -> str:
    """A probability for reading: three decimals, or two significant digits below 0.01, so that
    no non-zero value (a Wilson upper bound of 0/n: about 3.84 / n) is printed as 0.000."""
    if np.isnan(value):
        return "n/a"
    return f"{value:.3f}" if value == 0 or value >= 0.01 else f"{value:.2g}"


def with_interval(p: float, lo: float, hi: float, label: str = "") -> str:
    """``p [lo, hi]`` with :func:`probability`'s digits; ``label`` goes inside the bracket."""
    return f"{probability(p)} [{label}{probability(lo)}, {probability(hi)}]"


def _share(k: int, n: int) -> str:
    if not n:
        return "no valid runs"
    lo, hi = analysis.wilson_interval(k, n)
    return f"{k}/{n} = " + with_interval(k / n, lo, hi, "95% CI ")


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
    if revived == 0 and _nothing_moves_a_dead_network(rows):
        return Verdict(claim, BY_DEFINITION, DEAD_FOREVER_REASON, evidence)
    return Verdict(claim, "Supported" if revived == 0 else "Contradicted", evidence)


# Why a network dead at initialization cannot come back in a plain run.
DEAD_FOREVER_REASON = (
    "In these settings nothing can move a network dead at initialization: its dead layer has a "
    "derivative of 0 on every training input, so it and the layers before it get 0 gradient on "
    "every batch, optimizers with no weight decay turn 0 gradients into 0 updates, and there is "
    "no remedy, normalization, noise or stream to change them or the data. That none came back "
    "checks the engine, not the claim; runs with weight decay, a remedy or a stream can test it."
)


def _nothing_moves_a_dead_network(rows: pd.DataFrame) -> bool:
    """Whether every row trains on fixed data with no weight decay, normalization, flipping,
    intervention or noise: the settings where a dead network's hidden parameters cannot move.
    (Weight decay shrinks every parameter, and a dead layer's positive bias can then outgrow its
    shrinking inputs, so it is not in this list.)"""
    fixed = {
        "data.kind": lambda v: v not in STREAMS,
        "model.norm": lambda v: v == "none",
        "model.flip_dead": lambda v: not v,
        "train.weight_decay": lambda v: v == 0,
        "train.intervention": lambda v: v == "none",
        "train.noise_std": lambda v: v == 0,
    }
    return all(name in rows and rows[name].map(test).all() for name, test in fixed.items())


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
            f"width {width}: network dead at init {_share(k, n)}{_theory_of(group)}; dead "
            f"second-layer units {probability(fraction)} (lower bound 2^-{width} = {bound:.3g})"
        )
    verdict = "Supported" if any_dead else "Not supported"
    return Verdict(claim, verdict, "At offset 0, " + "; ".join(parts) + ".")


def _theory_of(rows: pd.DataFrame) -> str:
    """``" (theory: exact 0.500)"`` or ``" (theory: between 0.000 and 0.062)"`` when the rows
    share one; "" when they have none or differ."""
    for columns, text in (
        (["p_dead_init_theory"], "exact {:.3f}"),
        (["p_dead_init_lower", "p_dead_init_upper"], "between {:.3g} and {:.3g}"),
    ):
        if all(c in rows for c in columns):
            values = rows[columns].drop_duplicates()
            if len(values) == 1 and values.notna().all(axis=None):
                return " (theory: " + text.format(*values.iloc[0]) + ")"
    return ""


def claim_leaky(summary: pd.DataFrame) -> Verdict:
    claim = "Leaky ReLU avoids dead networks."
    leaky = _only(summary, model__activation="leaky_relu")
    if leaky.empty:
        return Verdict(claim, NOT_TESTED, "The grid has no leaky_relu setting.")
    init, end = _pooled(leaky, "p_dead_init"), _pooled(leaky, "p_dead_end")
    counts = f"leaky ReLU dead at init {_share(*init)}, at the end {_share(*end)}"
    relu = _only(summary, model__activation="relu")
    if len(relu):
        counts += f"; ReLU in this run: dead at the end {_share(*_pooled(relu, 'p_dead_end'))}"
    if init[0] or end[0]:  # a slope of 0, or a derivative rounded to 0: death is possible
        return Verdict(claim, "Contradicted", counts + ".")
    return Verdict(claim, BY_DEFINITION, LEAKY_REASON, counts + ".")


# Why the leaky ReLU claim needs no run: dead means a derivative of 0 on every input.
LEAKY_REASON = (
    "Leaky ReLU's derivative is its slope (> 0) below 0 and 1 above, never 0, so no unit and no "
    "network can be dead as this project defines it; its dead counts are 0 by construction. "
    "What a run can measure is how many leaky units are stuck below 0 on every input "
    "(inactive_units_*_lK in runs.parquet)."
)


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


# How the end of `study run` names each claim.
CLAIM_NAMES = {
    claim_dead_forever: "dead forever",
    claim_centering: "centering",
    claim_second_layer: "second layer",
    claim_leaky: "leaky ReLU",
    claim_bias: "bias",
}


def verdicts(summary: pd.DataFrame, reference: str = analysis.BASELINE) -> list[Verdict]:
    """The five claims judged on one run's summary table; in a run with variants, on the
    reference variant's rows only (the variants are judged against it in their own section)."""
    if "variant" in summary:
        summary = summary[summary["variant"] == reference]
    return [judge(summary) for judge in CLAIMS]


# --------------------------------------------------------------------------------------------
# Variants against the reference.
# --------------------------------------------------------------------------------------------

# What the variants table of a report says (where the run has variants).
VARIANTS_NOTE = (
    "Each variant against the reference variant, within the other settings. Where the draws are "
    'shared (pairing = "shared"), each network under the variant is compared with the same '
    "initialization under the reference, and a pair counts only if neither network diverged: "
    "'dead at end' is P(dead at the end) under the reference and under the variant, 'change' "
    "its difference with Newcombe's paired 95% interval, 'p (Holm)' McNemar's exact test "
    "Holm-adjusted over every row of the table (variants by other settings), 'saved' the "
    "networks dead at the end under the reference and alive under the variant, 'killed' the "
    "reverse; the cost: the change of the final loss and accuracy with paired t 95% intervals. "
    "Without shared draws the variants are independent samples (Newcombe's interval, Fisher or "
    "z test, Welch's t) and saved and killed are unknown (n/a)."
)


def variant_table(
    runs: pd.DataFrame, reference: str, shared_draws: bool, level: float = 0.95
) -> pd.DataFrame | None:
    """The variants of a run against its reference, formatted for reading; None when the runs
    have no ``variant`` column, a single variant, or none named ``reference``.

    A row per variant other than the reference and combination of the other settings
    (:func:`study.analysis.compare` with ``by="variant"``): P(dead at end) under the reference and
    the variant, its change with its interval and Holm-adjusted p, ``saved`` and ``killed``
    (``k_a_only``, ``k_b_only``: the reference is level a), and the change of the final loss and
    accuracy (paired where ``shared_draws`` and the variants hold the same initializations).
    """
    if "variant" not in runs or reference not in set(runs["variant"]):
        return None
    if runs["variant"].nunique() < 2:
        return None

    def against_reference(metric: str) -> pd.DataFrame:
        return analysis.compare(
            runs, "variant", metric, 1 - level, shared_draws=shared_draws, reference=reference
        )

    dead = against_reference("p_dead_end")
    loss, accuracy = (
        against_reference(metric) if metric in runs else None
        for metric in ("final_loss", "final_accuracy")
    )
    others = list(dead.columns[2 : dead.columns.get_loc("level_a")])
    table = dead[others].copy()
    table["variant"] = dead["level_b"]
    table["pairs"] = [row["n_a"] if row["paired"] else "n/a" for row in dead.to_dict("records")]
    table["dead at end"] = [
        "n/a" if np.isnan(row["p_a"]) else f"{probability(row['p_a'])} -> {probability(row['p_b'])}"
        for row in dead.to_dict("records")
    ]
    table["change"] = _changes(dead, "{:+.3f}")
    table["p (Holm)"] = [f"{p:.3g}" if not np.isnan(p) else "n/a" for p in dead["p_holm"]]
    for name, column in (("saved", "k_a_only"), ("killed", "k_b_only")):
        table[name] = [str(k) if not pd.isna(k) else "n/a" for k in dead[column]]
    table["loss change"] = _changes(loss, "{:+.3g}")
    table["accuracy change"] = _changes(accuracy, "{:+.3f}")
    return table.reset_index(drop=True)


def _changes(comparison: pd.DataFrame | None, number: str) -> list[str] | str:
    """Each row's ``difference [lo, hi]`` formatted with ``number``, or n/a (every row's, for
    a metric the runs lack)."""
    if comparison is None:
        return "n/a"
    text = f"{number} [{number}, {number}]"
    return [
        "n/a" if np.isnan(row["difference"]) else text.format(*row.values())
        for row in comparison[["difference", "difference_lo", "difference_hi"]].to_dict("records")
    ]


def _variants_of(folder: results.ResultsFolder) -> pd.DataFrame | None:
    """The variants table of a folder whose runs have variants (else None)."""
    runs = folder.runs()
    if "variant" not in runs:
        return None
    config = folder.manifest.config
    shared = analysis.shares_draws([(folder.manifest.pairing, folder.manifest.seed)])
    return variant_table(runs, analysis.reference_of(config), shared)


# --------------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------------


class FigureFile(NamedTuple):
    """One PNG of ``DIR/figures/``: its file name (``<stem>.png``) and its bytes."""

    name: str
    png: bytes

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0]

    @property
    def kind(self) -> str:
        """What the figure shows: its stem before the first ``__`` (``survival``, ``heatmap``)."""
        return self.stem.split("__", 1)[0]

    @property
    def caption(self) -> str:
        """``survival__depth-1__width-4`` reads ``survival: depth = 1, width = 4``."""
        kind, *fixed = self.stem.split("__")
        return kind + (": " + ", ".join(p.replace("-", " = ", 1) for p in fixed) if fixed else "")

    @property
    def wide(self) -> bool:
        """Wider than twice its height (PNG header), so shown under its claim, not beside it."""
        if self.png[:8] != b"\x89PNG\r\n\x1a\n":
            return False
        width, height = struct.unpack(">II", self.png[16:24])
        return width > 2 * height

    @property
    def anchor(self) -> str:
        return _anchor("figure", self.stem)


def _anchor(prefix: str, name: str) -> str:
    """An HTML id: ``prefix-name`` with anything but letters, digits, ``_.-`` made ``-``."""
    return f"{prefix}-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


# The figures that show each claim's evidence, best first, as parts of a file stem
# (study.plots names a figure <kind>__<its fixed settings>).
CLAIM_FIGURES = {
    claim_dead_forever: ("survival",),
    claim_centering: ("p_dead_vs_offset", "heatmap"),
    claim_second_layer: ("born_dead_vs_depth", "p_dead_vs_offset"),
    claim_leaky: ("heatmap", "leaky", "p_dead_vs_offset"),
    claim_bias: ("bias",),
}


def place_figures(
    judged: list[Verdict], figures: list[FigureFile]
) -> tuple[list[FigureFile | None], list[FigureFile]]:
    """The figure shown with each claim (or None), and the figures left for the Figures section.

    A claim gets the first figure of its kinds in :data:`CLAIM_FIGURES`, in their order, that no
    earlier claim shows; a claim this run did not test gets none.
    """
    shown: set[str] = set()
    beside = []
    for verdict, judge in zip(judged, CLAIMS, strict=True):
        kinds = () if verdict.verdict == NOT_TESTED else CLAIM_FIGURES[judge]
        candidates = (f for kind in kinds for f in figures if kind in f.stem)
        choice = next((f for f in candidates if f.name not in shown), None)
        if choice is not None:
            shown.add(choice.name)
        beside.append(choice)
    return beside, [f for f in figures if f.name not in shown]


def _by_kind(figures: list[FigureFile]) -> dict[str, list[FigureFile]]:
    groups: dict[str, list[FigureFile]] = {}
    for figure in figures:
        groups.setdefault(figure.kind, []).append(figure)
    return groups


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's varying settings and main estimates, formatted for reading."""
    settings = analysis.free_axes(summary, [])
    table = summary[settings].copy()
    table["n"] = summary["n_inits"]

    def with_ci(name):
        return [
            "n/a" if np.isnan(p) else with_interval(p, lo, hi)
            for p, lo, hi in zip(
                summary[name], summary[f"{name}_lo"], summary[f"{name}_hi"], strict=True
            )
        ]

    table["dead at init"] = with_ci("p_dead_init")
    table["theory"] = [_theory_cell(row) for _, row in summary.iterrows()]
    table["dead at end"] = with_ci("p_dead_end")
    table["revived"] = [probability(v) for v in summary["p_revived"]]
    table["diverged"] = [probability(v) for v in summary["p_diverged"]]
    table["accuracy"] = [f"{v:.3f}" for v in summary["mean_final_accuracy"]]
    return table


def _theory_cell(row: pd.Series) -> str:
    """A summary row's theory: the exact value, or ``[lower, upper]``; ``(!)`` if it disagrees."""
    flag = " (!)" if row["theory_disagrees"] else ""
    if not np.isnan(row["p_dead_init_theory"]):
        return f"{probability(row['p_dead_init_theory'])}{flag}"
    lower, upper = row.get("p_dead_init_lower", np.nan), row.get("p_dead_init_upper", np.nan)
    if np.isnan(lower) or np.isnan(upper):
        return ""
    return f"[{probability(lower)}, {probability(upper)}]{flag}"


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def _facts(manifest: results.Manifest, summary: pd.DataFrame) -> list[str]:
    """The run's facts; no timings and no device list (manifest.json has both), so that a rerun
    on another machine writes the same report: results do not depend on the devices."""
    low, high = int(summary["n_inits"].min()), int(summary["n_inits"].max())
    facts = [
        f"settings: {len(summary)}, initializations per setting: "
        + (f"{low}" if low == high else f"{low} to {high}"),
        f"study: {manifest.config.get('name', '?')}, seed {manifest.seed}, "
        f"pairing {manifest.pairing}",
    ]
    if manifest.backend:
        facts.append(f"backend: {manifest.backend}")
    return facts


# Beside a verdict that holds by definition: the run's counts, kept apart from the evidence.
MEASURED_LABEL = "Counts of this run (fixed by the definition, not evidence):"

THEORY_NOTE = (
    "Intervals are 95% Wilson intervals over the initializations that did not diverge. "
    "'theory' is the closed-form P(dead at init) where one applies to this setting and data, or "
    "[lower, upper] where only bounds are proved (docs/theory.md; summary.csv's theory_note says "
    "which result applies or why none does); (!) marks a setting whose interval excludes it."
)


def render_markdown(
    title: str, summary, manifest, judged, figures, variants=None, predicting=None
) -> str:
    """``report.md``: the run, the claims each with its figure, the variants (if any), the
    summary table, which metric predicts lost plasticity (if the run has the probe), the rest.

    ``title`` names the run (its folder's name); ``figures`` are :class:`FigureFile` s; the
    page links them from ``figures/``; ``variants``: :func:`variant_table` or None;
    ``predicting``: :func:`study.predictors.predictors` or None.
    """
    own, figures = _predictor_figures(figures, predicting)
    beside, rest = place_figures(judged, figures)
    lines = [f"# Dying-ReLU study report: {title}", ""]
    contents = ["[Run](#run)", "[Claims](#claims)"]
    contents += ["[Variants](#variants)"] * (variants is not None) + ["[Summary](#summary)"]
    contents += [f"[{predictors.TITLE}](#{PREDICTORS_ANCHOR})"] * (predicting is not None)
    lines += ["Contents: " + ", ".join(contents + ["[Figures](#figures)"] * bool(rest)), ""]
    lines += ["## Run", ""] + [f"- {fact}" for fact in _facts(manifest, summary)]
    lines += ["", "## Claims", ""]
    for i, (v, figure) in enumerate(zip(judged, beside, strict=True), 1):
        lines += [f"{i}. **{v.claim}** {v.verdict}. {v.evidence}", ""]
        if v.measured:
            lines += [f"   {MEASURED_LABEL} {v.measured}", ""]
        if figure is not None:
            lines += [f"   ![{figure.caption}](figures/{figure.name})", ""]
    if variants is not None:
        lines += ["## Variants", "", VARIANTS_NOTE, "", _markdown_table(variants), ""]
    lines += ["## Summary", "", THEORY_NOTE, "", _markdown_table(summary_table(summary)), ""]
    if predicting is not None:
        lines += [f"## {predictors.TITLE}", "", predicting.note, ""]
        for name, table in predicting.tables:
            lines += [f"### {name}", "", _markdown_table(table), ""]
        lines += [line for f in own for line in (f"![{f.caption}](figures/{f.name})", "")]
    if rest:
        lines += ["## Figures", ""]
        for kind, group in _by_kind(rest).items():
            lines += [f"### {kind}", ""]
            lines += [line for f in group for line in (f"![{f.caption}](figures/{f.name})", "")]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The page: one file, images inlined, a few lines of script for the table, no network.
# --------------------------------------------------------------------------------------------

# The page's style sheet, and the script that sorts the summary table by a clicked header
# (numbers by value, blanks and text after them) and filters its rows: every word must occur in
# the row; "name=value" must equal the cell of a column whose header is, or else contains, name.
# It marks <body data-ready="1"> once it ran. Package data, inlined into every page.
_ASSETS = resources.files("study") / "assets"
STYLE = (_ASSETS / "report.css").read_text(encoding="utf-8")
SCRIPT = (_ASSETS / "report.js").read_text(encoding="utf-8")


def _verdict_class(verdict: str) -> str:
    if verdict == NOT_TESTED:
        return "untested"
    if verdict == BY_DEFINITION:
        return "definition"
    if verdict.startswith("Supported"):
        return "supported"
    return "partly" if verdict.startswith("Partly") else "against"


def _html_verdict(verdict: str) -> str:
    return f'<span class="verdict {_verdict_class(verdict)}">{html.escape(verdict)}</span>'


def _html_figure(figure: FigureFile) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    caption = html.escape(figure.caption)
    return (
        f'<figure id="{figure.anchor}"><img alt="{caption}" src="data:image/png;base64,{data}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _html_contents(
    judged: list[Verdict], rest: list[FigureFile], variants=None, predicting: bool = False
) -> list[str]:
    items = ['<li><a href="#run">Run</a></li>', '<li><a href="#claims">Claims</a><ol>']
    for i, v in enumerate(judged, 1):
        items.append(
            f'<li><a href="#claim-{i}">{html.escape(v.claim)}</a> {_html_verdict(v.verdict)}</li>'
        )
    items.append("</ol></li>")
    if variants is not None:
        items.append('<li><a href="#variants">Variants</a></li>')
    items.append('<li><a href="#summary">Summary table</a></li>')
    if predicting:
        items.append(f'<li><a href="#{PREDICTORS_ANCHOR}">{predictors.TITLE}</a></li>')
    if rest:
        items.append('<li><a href="#figures">Figures</a><ul>')
        for kind, group in _by_kind(rest).items():
            link = f'<a href="#{_anchor("figures", kind)}">{html.escape(kind)}</a>'
            items.append(f"<li>{link} ({len(group)})</li>")
        items.append("</ul></li>")
    return ['<nav id="contents"><h2>Contents</h2><ol>', *items, "</ol></nav>"]


def _html_claims(judged: list[Verdict], beside: list[FigureFile | None]) -> list[str]:
    body = ['<section id="claims"><h2>Claims</h2>']
    for i, (v, figure) in enumerate(zip(judged, beside, strict=True), 1):
        side_by_side = figure is not None and not figure.wide
        kind = "claim with-figure" if side_by_side else "claim"
        measured = f"{MEASURED_LABEL} {v.measured}"
        body.append(
            f'<article class="{kind}" id="claim-{i}"><div><h3>{i}. {html.escape(v.claim)}</h3>'
            f"<p>{_html_verdict(v.verdict)} {html.escape(v.evidence)}</p>"
            + (f'<p class="measured">{html.escape(measured)}</p>' if v.measured else "")
            + "</div>"
        )
        if figure is not None:
            body.append(_html_figure(figure))
        body.append("</article>")
    return body + ["</section>"]


def _html_head_and_rows(table: pd.DataFrame) -> tuple[str, list[str]]:
    """A table's header cells and its rows as HTML, every value escaped."""
    esc = html.escape
    head = "".join(f'<th scope="col">{esc(str(c))}</th>' for c in table.columns)
    rows = [
        "<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>"
        for row in table.itertuples(index=False)
    ]
    return head, rows


def _html_table(table: pd.DataFrame) -> list[str]:
    esc = html.escape
    head, rows = _html_head_and_rows(table)
    return [
        '<section id="summary"><h2>Summary table</h2>',
        f"<p>{esc(THEORY_NOTE)} Click a header to sort; type words (or name=value) to filter.</p>",
        '<div class="controls"><input id="summary-filter" type="search" '
        'placeholder="filter, e.g. relu offset=2 width=4" aria-label="Filter the settings">'
        '<span id="summary-count"></span></div>',
        f'<div class="table-box"><table id="summary-table"><thead><tr>{head}</tr></thead><tbody>',
        *rows,
        "</tbody></table></div></section>",
    ]


def _html_variants(variants: pd.DataFrame | None) -> list[str]:
    if variants is None:
        return []
    head, rows = _html_head_and_rows(variants)
    return [
        f'<section id="variants"><h2>Variants</h2><p>{html.escape(VARIANTS_NOTE)}</p>',
        f'<div class="table-box"><table><thead><tr>{head}</tr></thead><tbody>',
        *rows,
        "</tbody></table></div></section>",
    ]


# The id of the section "Which metric predicts lost plasticity" (as Markdown's heading anchors).
PREDICTORS_ANCHOR = "which-metric-predicts-lost-plasticity"


def _predictor_figures(
    figures: list[FigureFile], predicting: predictors.Predictors | None
) -> tuple[list[FigureFile], list[FigureFile]]:
    """The figures of the section "Which metric predicts lost plasticity" (none without it), and
    the others: the claims and the Figures section never show the section's."""
    if predicting is None:
        return [], figures
    own = [f for f in figures if f.kind == predictors.FIGURE]
    return own, [f for f in figures if f.kind != predictors.FIGURE]


def _html_predictors(
    predicting: predictors.Predictors | None, figures: list[FigureFile]
) -> list[str]:
    if predicting is None:
        return []
    esc = html.escape
    body = [f'<section id="{PREDICTORS_ANCHOR}"><h2>{esc(predictors.TITLE)}</h2>']
    body.append(f"<p>{esc(predicting.note)}</p>")
    for name, table in predicting.tables:
        head, rows = _html_head_and_rows(table)
        body += [f"<h3>{esc(name)}</h3>", '<div class="table-box"><table>']
        body += [f"<thead><tr>{head}</tr></thead><tbody>", *rows, "</tbody></table></div>"]
    return body + [_html_figure(f) for f in figures] + ["</section>"]


def _html_figures(rest: list[FigureFile]) -> list[str]:
    if not rest:
        return []
    body = ['<section id="figures"><h2>Figures</h2>']
    for kind, group in _by_kind(rest).items():
        body.append(f'<section id="{_anchor("figures", kind)}"><h3>{html.escape(kind)}</h3>')
        body += [_html_figure(f) for f in group] + ["</section>"]
    return body + ["</section>"]


def render_html(
    title: str, summary, manifest, judged, figures, variants=None, predicting=None
) -> str:
    """``report.html``: :func:`render_markdown`'s contents as one self-contained page.

    A contents list, each claim with its figure, the summary table sortable and filterable by
    an inline script (no network, no library), the other figures; images inlined as base64.
    """
    esc = html.escape
    own, figures = _predictor_figures(figures, predicting)
    beside, rest = place_figures(judged, figures)
    body = [f"<h1>Dying-ReLU study report: {esc(title)}</h1>"]
    body += _html_contents(judged, rest, variants, predicting is not None)
    body += ['<section id="run"><h2>Run</h2><ul>']
    body += [f"<li>{esc(fact)}</li>" for fact in _facts(manifest, summary)] + ["</ul></section>"]
    body += _html_claims(judged, beside)
    body += _html_variants(variants)
    body += _html_table(summary_table(summary))
    body += _html_predictors(predicting, own)
    body += _html_figures(rest)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Report {esc(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


def write_report(folder: results.ResultsFolder | str | Path) -> tuple[Path, Path]:
    """Write the folder's ``report.md`` and ``report.html``; draws the figures if there are none.

    ``folder``: a :class:`study.results.ResultsFolder`, or the path of one (opened here).
    """
    from study import plots

    if not isinstance(folder, results.ResultsFolder):
        folder = results.ResultsFolder.open(folder)
    summary = folder.summary()
    manifest = folder.manifest
    if not folder.figure_files():
        plots.plot_results(folder)
    figures = [FigureFile(name, data) for name, data in folder.read_figures()]
    judged = verdicts(summary, analysis.reference_of(manifest.config))
    title = folder.path.name
    variants = _variants_of(folder)
    predicting = predictors.predictors(folder.runs(), folder.curves())
    return folder.write_report(
        render_markdown(title, summary, manifest, judged, figures, variants, predicting),
        render_html(title, summary, manifest, judged, figures, variants, predicting),
    )


def headline(summary: pd.DataFrame, reference: str = analysis.BASELINE) -> list[str]:
    """A few lines that answer the question for a run's grid, for the end of ``study run``
    (``reference``: the reference variant, whose rows the claims read in a run with variants).

    The settings with the highest and lowest P(dead at end) with their intervals, how many
    networks dead at initialization or during training came back, any setting whose estimate
    disagrees with its closed form, and the verdict on each claim (the report has the evidence).
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
    judged = zip(CLAIMS, verdicts(summary, reference), strict=True)
    short = (f"{CLAIM_NAMES[judge]}: {v.verdict.split(' (')[0].lower()}" for judge, v in judged)
    lines.append("claims: " + "; ".join(short))
    return lines
